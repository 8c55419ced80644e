"""Documents in the instance admin (issue #17, DESIGN §12): the Documents page (instance-wide and
every visible client's documents, filters, search, upload), a document's page (metadata, status
with progress that refreshes while it is processed, its chunks, Open file, Replace file, Delete,
Pin/Unpin with the excerpt) and the client page's Documents panel.

Every write goes through the documents' services (`services`) and the pins (`pins`), which ask
the access policy and record the audit entries; this module only renders and routes.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.http import FileResponse, HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme

from spokestack.accounts import policy
from spokestack.admin_site import ClientScopedFilter, InstanceModelAdmin, instance_admin
from spokestack.errors import DomainError
from tuning.admin import ClientPanel, register_client_panel
from tuning.models import Client

from . import pins, services
from .models import Chunk, Document, DocumentKind, DocumentStatus

INSTANCE_WIDE = ""
CHUNKS_SHOWN = 200


def _may(user, action: str, client_id: int | None) -> bool:
    """The policy's answer for a document of `client_id`; an instance-wide document is written only by
    the roles that act on every client (services.knowledge_require), read by everyone who may view."""
    if client_id is not None:
        return policy.allows(user, action, client_id)
    if action == "knowledge.view":
        return policy.allows(user, action)
    return policy.allows(user, action) and policy.acts_on_every_client(user, action)


def _back(request: HttpRequest, default: str) -> str:
    back = request.POST.get("next") or request.GET.get("next") or ""
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return back
    return default


def _size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / 1024 / 1024:.1f} MB"
    return f"{max(1, round(size / 1024))} KB" if size else "—"


def status_text(document: Document) -> str:
    if document.status == DocumentStatus.PROCESSING:
        return f"Processing · {document.progress}%"
    if document.status == DocumentStatus.FAILED:
        return "Failed"
    return "Ready"


class DocumentUploadForm(forms.Form):
    """Title, kind, language, whose (a client the person may upload for, or the whole instance), file."""

    title = forms.CharField(max_length=200, required=False, help_text="Empty: the file's name.")
    kind = forms.ChoiceField(choices=DocumentKind.choices, initial=DocumentKind.BRAND_GUIDELINES)
    language = forms.CharField(max_length=10, initial="en", widget=forms.TextInput(attrs={"size": 6}),
                               help_text="en, ar, fr, de are searched with stemming; any other word by word.")
    client = forms.ChoiceField(label="For", required=False)
    file = forms.FileField(help_text="PDF, DOCX, HTML, Markdown, text or CSV; the type is read from the content.")
    reason = forms.CharField(max_length=300, required=False, label="Reason")

    def __init__(self, *args, actor=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        choices = [(str(c.pk), c.name) for c in policy.clients_for(actor, "knowledge.upload").order_by("name")]
        if policy.acts_on_every_client(actor, "knowledge.upload"):
            choices.insert(0, (INSTANCE_WIDE, "The whole instance (every client's runs)"))
        self.fields["client"].choices = choices


class DocumentClientFilter(ClientScopedFilter):
    """The visible clients, and "Instance-wide" for the documents of no client."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.empty_value_display = "Instance-wide"


@admin.register(Document, site=instance_admin)
class DocumentAdmin(InstanceModelAdmin):
    """The Documents page: instance-wide documents and the documents of every client the person
    may see (policy knowledge.view), with upload; each document's own page."""

    view_action = "knowledge.view"
    add_action = "knowledge.upload"
    change_action = "knowledge.pin"
    delete_action = "knowledge.delete"
    list_display = ("title", "owner", "kind", "status_column", "pages", "size", "pinned", "updated_at")
    list_display_links = ("title",)
    list_filter = (("client", DocumentClientFilter), "kind", "status", "language")
    search_fields = ("title",)
    list_select_related = ("client", "uploaded_by")
    list_per_page = 50
    actions = None

    def allows(self, request: HttpRequest, action: str | None, obj=None) -> bool:
        if isinstance(obj, Document) and action is not None:
            return _may(request.user, action, obj.client_id)
        return super().allows(request, action, obj)

    def get_queryset(self, request):
        return services.documents_visible_to(actor=request.user)

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Documents", **(extra_context or {})})

    @admin.display(description="For", ordering="client__name")
    def owner(self, obj: Document) -> str:
        return obj.client.name if obj.client_id else "Instance-wide"

    @admin.display(description="Status", ordering="status")
    def status_column(self, obj: Document) -> str:
        return status_text(obj)

    @admin.display(description="Size", ordering="size_bytes")
    def size(self, obj: Document) -> str:
        return _size(obj.size_bytes)

    def get_urls(self):
        view = self.policy_view
        return [
            path("<int:document_id>/status/", view(self.status_view, "knowledge.view"),
                 name="knowledge_document_status"),
            path("<int:document_id>/file/", view(self.file_view, "knowledge.view"), name="knowledge_document_file"),
            path("<int:document_id>/replace/", view(self.replace_view, "knowledge.upload"),
                 name="knowledge_document_replace"),
            path("<int:document_id>/pin/", view(self.pin_view, "knowledge.pin"), name="knowledge_document_pin"),
            path("<int:document_id>/unpin/", view(self.unpin_view, "knowledge.pin"), name="knowledge_document_unpin"),
            *super().get_urls(),
        ]

    # --- upload ---------------------------------------------------------------------------------

    def add_view(self, request, form_url="", extra_context=None):
        self.require(request, "knowledge.upload")
        status = 200
        initial = {"client": request.GET.get("client", "")}
        if request.method == "POST":
            form = DocumentUploadForm(request.POST, request.FILES, actor=request.user, prefix="document")
            if form.is_valid():
                data = form.cleaned_data
                try:
                    document = services.document_upload(
                        actor=request.user, client_id=int(data["client"]) if data["client"] else None,
                        title=data["title"], kind=data["kind"], language=data["language"],
                        uploaded_file=data["file"], reason=data["reason"])
                except DomainError as exc:
                    if exc.status >= 500 or exc.status in (403, 404):
                        raise
                    field = next((f for f in (exc.details or {}) if f in form.fields), None)
                    form.add_error(field, exc.message)
                else:
                    messages.success(request, f"“{document.title}” uploaded: it is being read now; its status "
                                              "shows on its page.")
                    default = reverse("instance_admin:knowledge_document_change", args=[document.pk])
                    return HttpResponseRedirect(_back(request, default))
            status = 400
            if request.GET.get("next"):  # posted from the client page's panel: say why there
                for error in [*form.non_field_errors(), *[f"{form.fields[f].label or f}: {' '.join(e)}"
                                                          for f, e in form.errors.items() if f != "__all__"]]:
                    messages.error(request, f"The document was not uploaded. {error}")
                return HttpResponseRedirect(_back(request, reverse("instance_admin:knowledge_document_add")))
        else:
            form = DocumentUploadForm(initial=initial, actor=request.user, prefix="document")
        context = {**self.admin_site.each_context(request), "title": "Upload a document", "form": form,
                   "opts": self.model._meta, "max_mb": _size(settings.KNOWLEDGE_MAX_UPLOAD_BYTES)}
        return TemplateResponse(request, "admin/knowledge/document/upload.html", context, status=status)

    # --- one document ---------------------------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        document = services.document_get(actor=request.user, document_id=object_id)
        services.knowledge_require(request.user, "knowledge.view", document.client)
        chunks = list(Chunk.objects.filter(document=document).order_by("ordinal")
                      .values("ordinal", "heading", "page", "text")[:CHUNKS_SHOWN])
        selection = pins.pins_for_prompt(client=document.client_id)
        told = any(p.document_id == document.pk for p in selection.included)
        may_pin = _may(request.user, "knowledge.pin", document.client_id)
        excerpt = document.pin_excerpt if document.pinned else ""
        if may_pin and not excerpt and document.status == DocumentStatus.READY:
            excerpt = pins.document_beginning(document)
        context = {
            **self.admin_site.each_context(request), "title": document.title, "document": document,
            "opts": self.model._meta, "original": document, "status_label": status_text(document),
            "size": _size(document.size_bytes), "chunks": chunks, "chunks_more": document.chunks_count > len(chunks),
            "may_replace": _may(request.user, "knowledge.upload", document.client_id),
            "may_delete": _may(request.user, "knowledge.delete", document.client_id),
            "may_pin": may_pin, "excerpt": excerpt, "pin_max": pins.pin_max_chars(),
            "pin_told": told, "pin_total": selection.limit,
            "status_url": reverse("instance_admin:knowledge_document_status", args=[document.pk]),
            "file_url": reverse("instance_admin:knowledge_document_file", args=[document.pk]),
            "replace_url": reverse("instance_admin:knowledge_document_replace", args=[document.pk]),
            "pin_url": reverse("instance_admin:knowledge_document_pin", args=[document.pk]),
            "unpin_url": reverse("instance_admin:knowledge_document_unpin", args=[document.pk]),
            "delete_url": reverse("instance_admin:knowledge_document_delete", args=[document.pk]),
            "client_url": (reverse("instance_admin:tuning_client_change", args=[document.client_id])
                           if document.client_id else ""),
        }
        return TemplateResponse(request, "admin/knowledge/document/detail.html", context)

    def status_view(self, request, document_id: int) -> JsonResponse:
        """GET: the document's status for its page's progress (polled while it is processed)."""
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        document = services.document_get(actor=request.user, document_id=document_id)
        return JsonResponse({"status": document.status, "label": status_text(document),
                             "progress": document.progress, "error": document.error,
                             "chunks": document.chunks_count, "pages": document.pages,
                             "finished": document.status != DocumentStatus.PROCESSING})

    def file_view(self, request, document_id: int) -> FileResponse:
        """The stored file, streamed after the policy (never a storage URL)."""
        document, handle = services.document_open(actor=request.user, document_id=document_id)
        return FileResponse(handle, as_attachment=request.GET.get("download") == "1",
                            filename=document.original_name or f"document-{document.pk}")

    def replace_view(self, request, document_id: int):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        document = services.document_get(actor=request.user, document_id=document_id)
        page = reverse("instance_admin:knowledge_document_change", args=[document.pk])
        uploaded = request.FILES.get("file")
        try:
            services.document_replace(actor=request.user, document=document, uploaded_file=uploaded,
                                      reason=(request.POST.get("reason") or "").strip()[:300])
        except DomainError as exc:
            if exc.status in (403, 404):
                raise
            messages.error(request, f"The file was not replaced. {exc.message}")
        else:
            messages.success(request, f"Revision {document.revision + 1} uploaded: it is being read now.")
        return HttpResponseRedirect(page)

    def pin_view(self, request, document_id: int):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        page = reverse("instance_admin:knowledge_document_change", args=[document_id])
        try:
            document = pins.document_pin(actor=request.user, document_id=document_id,
                                         excerpt=request.POST.get("excerpt"),
                                         reason=(request.POST.get("reason") or "").strip()[:300])
        except DomainError as exc:
            if exc.status in (403, 404):
                raise
            messages.error(request, f"Not pinned. {exc.message}")
        else:
            whose = document.client.name if document.client_id else "every client"
            messages.success(request, f"Pinned: runs for {whose} are told this excerpt ({len(document.pin_excerpt)} "
                                      "characters) from their next run.")
        return HttpResponseRedirect(_back(request, page))

    def unpin_view(self, request, document_id: int):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        page = reverse("instance_admin:knowledge_document_change", args=[document_id])
        pins.document_unpin(actor=request.user, document_id=document_id,
                            reason=(request.POST.get("reason") or "").strip()[:300])
        messages.success(request, "Unpinned: runs are no longer told its excerpt (the document stays searchable).")
        return HttpResponseRedirect(_back(request, page))

    # --- delete (Django's confirmation page, then the service) ------------------------------------

    def get_deleted_objects(self, objs, request):
        """What the confirmation lists: the document and how many chunks go with it (not every chunk)."""
        names, counts = [], {"Documents": 0, "Chunks": 0}
        for document in objs:
            names.append(f"Document: {document.title} ({document.chunks_count} chunks and its stored file)")
            counts["Documents"] += 1
            counts["Chunks"] += document.chunks_count
        perms_needed = set() if all(_may(request.user, "knowledge.delete", d.client_id) for d in objs) else {"document"}
        return names, counts, perms_needed, []

    def delete_model(self, request, obj: Document) -> None:
        services.document_delete(actor=request.user, document=obj,
                                 reason=(request.POST.get("reason") or "").strip()[:300])

    def delete_queryset(self, request, queryset) -> None:
        for document in queryset:
            self.delete_model(request, document)

    def response_delete(self, request, obj_display, obj_id):
        messages.success(request, f"“{obj_display}” deleted with its chunks and stored file.")
        return HttpResponseRedirect(reverse("instance_admin:knowledge_document_changelist"))


# --- the client page's panel --------------------------------------------------------------------


def documents_html(request: HttpRequest, client: Client) -> str:
    """The client's documents (status, pinned) and an upload row. The panel sits inside the client's
    change form, so its Upload button posts that form to the upload view (`formaction`, multipart)
    with fields of their own prefix, and comes back here."""
    if not policy.allows(request.user, "knowledge.view", client):
        return ""
    documents = list(services.documents_visible_to(actor=request.user, client_id=client.pk)[:20])
    form = None
    if policy.allows(request.user, "knowledge.upload", client):
        form = DocumentUploadForm(initial={"client": str(client.pk)}, actor=request.user, prefix="document")
        form.use_required_attribute = False  # inside the client form: Save must not ask for a file
    return render_to_string("admin/knowledge/client_documents.html", {
        "client": client, "documents": [(d, status_text(d)) for d in documents], "form": form,
        "next": request.get_full_path(), "csrf_token": get_token(request),
        "add_url": reverse("instance_admin:knowledge_document_add"),
        "list_url": reverse("instance_admin:knowledge_document_changelist") + f"?client__id__exact={client.pk}",
    }, request=request)


register_client_panel(ClientPanel("Documents", documents_html, order=40))
