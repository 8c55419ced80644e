"""`/api/v1/knowledge/documents`: documents for a client or the whole instance (DESIGN §12).

Thin views: the base view asks the policy per method; the services check the document's client
again, and the reads are scoped by `documents_visible_to`. Uploads are multipart (a `file` part
and form fields); the file is streamed back only after the policy.
"""

from __future__ import annotations

from django.http import FileResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from spokestack.api.pagination import Pagination
from spokestack.api.params import choice_param, int_param
from spokestack.api.views import InstanceApiView, validated_body
from spokestack.errors import InvalidInput
from tuning import selectors as tuning_selectors

from . import services
from .models import Document, DocumentKind, DocumentStatus

CONTENT_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "html": "text/html",
    "md": "text/markdown",
    "txt": "text/plain",
    "csv": "text/csv",
}


class DocumentSerializer(serializers.ModelSerializer):
    client_id = serializers.IntegerField(allow_null=True, read_only=True,
                                         help_text="The client; null: instance-wide (searched for every client).")
    file_name = serializers.CharField(source="original_name", read_only=True)
    uploaded_by = serializers.CharField(source="uploaded_by.username", default=None, read_only=True)
    file_url = serializers.SerializerMethodField(help_text="Where the file is downloaded (after the policy).")

    class Meta:
        model = Document
        fields = ["id", "client_id", "title", "kind", "language", "file_name", "file_type", "size_bytes", "sha256",
                  "pages", "status", "error", "progress", "chunks_count", "revision", "pinned", "pin_excerpt",
                  "uploaded_by",
                  "created_at", "updated_at", "processed_at", "file_url"]
        read_only_fields = fields

    def get_file_url(self, document: Document) -> str:
        return f"/api/v1/knowledge/documents/{document.pk}/file"


class DocumentUploadSerializer(serializers.Serializer):
    """The multipart form of an upload."""

    file = serializers.FileField(help_text="PDF, DOCX, HTML, Markdown, text or CSV; the type is read from the "
                                           "content. At most KNOWLEDGE_MAX_UPLOAD_BYTES (20 MB by default).")
    client_id = serializers.IntegerField(required=False, allow_null=True,
                                         help_text="The client; omitted: instance-wide (admins and managers).")
    title = serializers.CharField(required=False, max_length=200, help_text="Default: the file's name.")
    kind = serializers.ChoiceField(choices=DocumentKind.choices, required=False, default=DocumentKind.REFERENCE)
    language = serializers.CharField(required=False, max_length=10, default="en",
                                     help_text="en, ar, fr, de (stemmed); any other code is indexed word by word.")
    reason = serializers.CharField(required=False, help_text="Why: kept in the audit log.")
    ticket = serializers.CharField(required=False)


class DocumentFileSerializer(serializers.Serializer):
    """The multipart form of a re-upload."""

    file = serializers.FileField(help_text="The new file; the document's chunks are replaced once it is read.")
    reason = serializers.CharField(required=False)
    ticket = serializers.CharField(required=False)


def _form(request, fields: tuple[str, ...]) -> dict[str, str]:
    """The form's text fields, refused when they carry what cannot be stored (U+0000)."""
    values: dict[str, str] = {}
    for field in fields:
        value = request.data.get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidInput(f"{field}: send text.", details={field: ["not text"]})
        if "\x00" in value or any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
            raise InvalidInput(f"{field}: contains a character that cannot be stored (U+0000 or a lone surrogate).",
                               code="unstorable_character", details={field: ["unstorable character"]})
        values[field] = value
    return values


def _file(request):
    upload = request.FILES.get("file")
    if upload is None:
        raise InvalidInput("file: attach the document as the multipart part `file` (PDF, DOCX, HTML, Markdown, text "
                           "or CSV).", details={"file": ["required"]})
    return upload


DOCUMENT_FILTERS = [
    OpenApiParameter("client_id", int, description="Only this client's documents."),
    OpenApiParameter("instance_wide", bool, description="true: only instance-wide documents (no client)."),
    OpenApiParameter("kind", str, enum=DocumentKind.values, description="Only documents of this kind."),
    OpenApiParameter("status", str, enum=DocumentStatus.values, description="Only documents in this status."),
]


class DocumentListView(InstanceApiView):
    """Documents agents search and cite: a client's, and the instance-wide ones."""

    action = {"get": "knowledge.view", "post": "knowledge.upload"}
    pagination_class = Pagination
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(parameters=DOCUMENT_FILTERS, responses=DocumentSerializer(many=True),
                   summary="The documents you may see, newest first (?client_id=, ?kind=, ?status=).")
    def get(self, request):
        params = request.query_params
        client_id = int_param(params, "client_id", minimum=1)
        if client_id is not None:
            tuning_selectors.client_get(actor=request.user, client_id=client_id)  # 404 for one you may not see
        kind = choice_param(params, "kind", DocumentKind.values) or ""
        status_ = choice_param(params, "status", DocumentStatus.values) or ""
        instance_wide = choice_param(params, "instance_wide", ["true", "false"]) == "true"
        services.documents_recover()
        documents = services.documents_visible_to(actor=request.user, client_id=client_id, kind=kind,
                                                  status=status_, instance_wide=instance_wide)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(documents, request, view=self)
        return paginator.get_paginated_response(DocumentSerializer(page, many=True).data)

    @extend_schema(request={"multipart/form-data": DocumentUploadSerializer}, responses={201: DocumentSerializer},
                   summary="Upload a document (multipart); it is processed in the background (status, progress).")
    def post(self, request):
        form = _form(request, ("client_id", "title", "kind", "language", "reason", "ticket"))
        client_id = None
        if form.get("client_id", "").strip():
            client_id = int_param(form, "client_id", minimum=1)
            tuning_selectors.client_get(actor=request.user, client_id=client_id)
        upload = _file(request)
        document = services.document_upload(
            actor=request.user, client_id=client_id, title=form.get("title", ""),
            kind=form.get("kind") or DocumentKind.REFERENCE, language=form.get("language") or "en",
            uploaded_file=upload, reason=form.get("reason", ""), ticket=form.get("ticket", ""))
        return Response(DocumentSerializer(document).data, status=status.HTTP_201_CREATED)


class DocumentDetailView(InstanceApiView):
    action = {"get": "knowledge.view", "delete": "knowledge.delete"}

    @extend_schema(responses=DocumentSerializer, summary="One document, with its status and progress.")
    def get(self, request, document_id: int):
        services.documents_recover()
        return Response(DocumentSerializer(services.document_get(actor=request.user, document_id=document_id)).data)

    @extend_schema(parameters=[OpenApiParameter("reason", str, description="Why: kept in the audit log.")],
                   responses={204: None}, summary="Delete a document, its chunks and its file.")
    def delete(self, request, document_id: int):
        document = services.document_get(actor=request.user, document_id=document_id)
        reason = request.query_params.get("reason", "")
        if "\x00" in reason:
            raise InvalidInput("reason: contains U+0000.", code="unstorable_character")
        services.document_delete(actor=request.user, document=document, reason=reason)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DocumentFileView(InstanceApiView):
    action = {"get": "knowledge.view", "put": "knowledge.upload"}
    parser_classes = [MultiPartParser, FormParser]

    def perform_content_negotiation(self, request, force=False):
        return super().perform_content_negotiation(request, force=True)  # a file answers any Accept

    @extend_schema(responses={(200, media): OpenApiResponse(OpenApiTypes.BINARY, description="The file.")
                              for media in CONTENT_TYPES.values()},
                   summary="Download the document's file (Content-Disposition: attachment).")
    def get(self, request, document_id: int):
        document, handle = services.document_open(actor=request.user, document_id=document_id)
        content_type = CONTENT_TYPES.get(document.file_type, "application/octet-stream")
        if content_type.startswith("text/"):
            content_type += "; charset=utf-8"
        return FileResponse(handle, as_attachment=True, filename=document.original_name or f"document-{document.pk}",
                            content_type=content_type)

    @extend_schema(request={"multipart/form-data": DocumentFileSerializer}, responses=DocumentSerializer,
                   summary="Upload a new file for the document: its chunks are replaced once the new file is read.")
    def put(self, request, document_id: int):
        form = _form(request, ("reason", "ticket"))
        document = services.document_get(actor=request.user, document_id=document_id)
        document = services.document_replace(actor=request.user, document=document, uploaded_file=_file(request),
                                             reason=form.get("reason", ""), ticket=form.get("ticket", ""))
        return Response(DocumentSerializer(document).data)


class DocumentPinSerializer(serializers.Serializer):
    excerpt = serializers.CharField(required=False, allow_blank=True, allow_null=True,
                                    help_text="The part to tell every run for the client, at most "
                                              "KNOWLEDGE_PIN_MAX_CHARS characters; empty: the document's beginning.")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=300)
    ticket = serializers.CharField(required=False, allow_blank=True, max_length=100)


class DocumentPinView(InstanceApiView):
    """Pin a document's excerpt into tier 3 (every run for its client is told it; an instance-wide
    document's pin reaches every client), or unpin it. Audited and reversible (tuning.knowledge.pins)."""

    action = {"post": "knowledge.pin", "delete": "knowledge.pin"}

    @extend_schema(request=DocumentPinSerializer, responses=DocumentSerializer,
                   summary="Pin the document (or change its pinned excerpt).")
    def post(self, request, document_id: int):
        from .pins import document_pin

        body = validated_body(DocumentPinSerializer, request.data)
        document = document_pin(actor=request.user, document_id=document_id, excerpt=body.get("excerpt"),
                                reason=body.get("reason", ""), ticket=body.get("ticket", ""))
        return Response(DocumentSerializer(document).data)

    @extend_schema(parameters=[OpenApiParameter("reason", str, description="Why: kept in the audit log.")],
                   responses=DocumentSerializer, summary="Unpin the document (it stays searchable).")
    def delete(self, request, document_id: int):
        from .pins import document_unpin

        reason = request.query_params.get("reason", "")
        if "\x00" in reason:
            raise InvalidInput("reason: contains U+0000.", code="unstorable_character")
        return Response(DocumentSerializer(document_unpin(actor=request.user, document_id=document_id,
                                                          reason=reason)).data)


urlpatterns = [
    path("knowledge/documents", DocumentListView.as_view(), name="knowledge-documents"),
    path("knowledge/documents/<int:document_id>", DocumentDetailView.as_view(), name="knowledge-document"),
    path("knowledge/documents/<int:document_id>/file", DocumentFileView.as_view(), name="knowledge-document-file"),
    path("knowledge/documents/<int:document_id>/pin", DocumentPinView.as_view(), name="knowledge-document-pin"),
]
