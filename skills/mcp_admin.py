"""MCP servers in the instance admin: add a server (secret write-only), "Refresh tools" (a button on
the server's page and a changelist action) that lists its tools, and each tool's exposure (name
for agents, agent types, enabled, approval) changed through `skills.mcp`. Errors are messages."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from spokestack.admin_site import InstanceInline, InstanceModelAdmin, instance_admin
from spokestack.errors import DomainError
from tuning.admin import AuditedChangeAdmin
from tuning.models import agent_label

from .mcp import (
    mcp_server_create,
    mcp_server_delete,
    mcp_server_update,
    mcp_server_validate,
    mcp_tool_update,
    mcp_tool_validate,
    mcp_tools_refresh,
)
from .models import McpServer, McpTool
from .selectors import mcp_metrics_of, mcp_servers_with_counts, mcp_tools_with_metrics
from .services import core_tool_names

SERVER_FIELDS = ["name", "url", "auth_header", "auth_secret", "enabled", "timeout_s", "max_result_chars"]
TOOL_FIELDS = ["name", "agent_types", "enabled", "requires_approval"]


def _field_error(form: forms.Form, exc: DomainError) -> None:
    field = exc.details.get("field") if isinstance(exc.details, dict) else None
    form.add_error(field if field in form.fields else None, exc.message)


class McpServerForm(forms.ModelForm):
    auth_secret = forms.CharField(required=False, strip=False, widget=forms.PasswordInput(render_value=False),
                                  help_text="The header's value (e.g. 'Bearer …'). Write-only: leave empty to keep "
                                            "the stored one.")
    url = forms.URLField(max_length=500, assume_scheme="https",
                         help_text="The server's streamable HTTP endpoint; vetted like a webhook URL.")

    class Meta:
        model = McpServer
        fields = [f for f in SERVER_FIELDS if f != "auth_secret"]

    def changes(self) -> dict:
        data = {f: self.cleaned_data.get(f) for f in SERVER_FIELDS if f in self.cleaned_data}
        if not data.get("auth_secret"):
            data.pop("auth_secret", None)
        if data.get("auth_header") is None:
            data["auth_header"] = ""
        return data

    def _post_clean(self) -> None:
        if self.errors:
            return
        try:
            mcp_server_validate(server=self.instance if self.instance.pk else McpServer(), data=self.changes())
        except DomainError as exc:
            _field_error(self, exc)


class McpToolInline(InstanceInline, admin.TabularInline):
    """The server's tools, read-only here: each links to its own page, where exposure is chosen."""

    view_action = "skill.view"
    model = McpTool
    extra = 0
    can_delete = False
    fields = ["tool_link", "remote_name", "agents", "enabled", "requires_approval", "state"]
    readonly_fields = fields
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Name for agents")
    def tool_link(self, tool):
        return format_html('<a href="{}"><code>{}</code></a>',
                           reverse("instance_admin:skills_mcptool_change", args=[tool.pk]), tool.name)

    @admin.display(description="Agents")
    def agents(self, tool):
        return ", ".join(agent_label(t) for t in tool.agent_types) or "—"

    @admin.display(description="State")
    def state(self, tool):
        return "vanished from the server" if tool.vanished_at else "listed"


@admin.register(McpServer, site=instance_admin)
class McpServerAdmin(AuditedChangeAdmin, InstanceModelAdmin):
    view_action = "skill.view"
    add_action = change_action = delete_action = "skill.edit"
    form = McpServerForm
    inlines = [McpToolInline]
    list_display = ["server_name", "url", "enabled", "tool_counts", "tools_refreshed_at", "error", "refresh_link"]
    list_filter = ["enabled"]
    search_fields = ["name", "url"]
    actions = ["refresh_tools"]
    fieldsets = [(None, {"fields": ["name", "url", "auth_header", "auth_secret", "enabled", "timeout_s",
                                    "max_result_chars"]})]
    change_form_template = "admin/skills/mcpserver_change_form.html"

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["fields"] = [f for f in SERVER_FIELDS if f != "auth_secret"]
        return super().get_form(request, obj, change, **kwargs)

    def get_queryset(self, request):
        return mcp_servers_with_counts(super().get_queryset(request))

    def get_inline_instances(self, request, obj=None):
        return super().get_inline_instances(request, obj) if obj is not None else []

    @admin.display(description="Server", ordering="name")
    def server_name(self, server):
        return format_html("<code>{}</code>", server.name)

    @admin.display(description="Tools (exposed)")
    def tool_counts(self, server):
        return f"{server.m_tools} ({server.m_exposed})"

    @admin.display(description="Last error")
    def error(self, server):
        return server.last_error[:80] or "—"

    @admin.display(description="")
    def refresh_link(self, server):
        return format_html('<form method="post" action="{}"><input type="hidden" name="csrfmiddlewaretoken" '
                           'value="{}"><input type="submit" value="Refresh tools"></form>',
                           reverse("instance_admin:skills_mcpserver_refresh", args=[server.pk]), self._csrf)

    def changelist_view(self, request, extra_context=None):
        from django.middleware.csrf import get_token

        self._csrf = get_token(request)
        return super().changelist_view(request, extra_context)

    def get_list_display(self, request):
        shown = super().get_list_display(request)
        return shown if self.allows(request, "skill.edit") else [c for c in shown if c != "refresh_link"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self.allows(request, "skill.edit"):
            actions.pop("refresh_tools", None)
        return actions

    @admin.action(description="Refresh tools of the selected servers")
    def refresh_tools(self, request, queryset):
        for server in queryset.order_by("name"):
            self._refresh(request, server)

    def _refresh(self, request, server: McpServer) -> None:
        try:
            mcp_tools_refresh(actor=request.user, server=server)
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        tools = list(McpTool.objects.filter(server=server, vanished_at__isnull=True).order_by("name"))
        listed = format_html_join(", ", "<code>{}</code>", ((t.remote_name,) for t in tools)) if tools else "none"
        self.message_user(request, format_html("{} lists {} tool(s): {}. Choose on each tool's page which to expose.",
                                               server.name, len(tools), listed), messages.SUCCESS)

    def save_model(self, request, obj, form, change):
        data = form.changes()
        if change:
            saved = mcp_server_update(actor=request.user, server=obj, changes=data, **self.why(form))
        else:
            saved = mcp_server_create(actor=request.user, **data, **self.why(form))
        obj.pk, obj.name = saved.pk, saved.name

    def save_related(self, request, form, formsets, change):
        pass  # the tools are read-only here; they change through mcp_tool_update on their own page

    def delete_model(self, request, obj):
        mcp_server_delete(actor=request.user, server=obj)

    def delete_queryset(self, request, queryset):
        for server in queryset:
            mcp_server_delete(actor=request.user, server=server)

    def get_urls(self):
        return [path("<int:server_id>/refresh/", self.policy_view(self.refresh_view, "skill.edit"),
                     name="skills_mcpserver_refresh"), *super().get_urls()]

    def refresh_view(self, request, server_id: int):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        self._refresh(request, get_object_or_404(McpServer, pk=server_id))
        return HttpResponseRedirect(reverse("instance_admin:skills_mcpserver_change", args=[server_id]))


class McpToolForm(forms.ModelForm):
    agent_types = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple, required=False)

    class Meta:
        model = McpTool
        fields = TOOL_FIELDS

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agent_types"].choices = sorted(((t, agent_label(t)) for t in core_tool_names()),
                                                    key=lambda choice: choice[1])

    def changes(self) -> dict:
        data = {f: self.cleaned_data.get(f) for f in TOOL_FIELDS if f in self.cleaned_data}
        data["agent_types"] = list(data.get("agent_types") or [])
        return data

    def _post_clean(self) -> None:
        if self.errors:
            return
        try:
            mcp_tool_validate(tool=self.instance, data=self.changes())
        except DomainError as exc:
            _field_error(self, exc)


@admin.register(McpTool, site=instance_admin)
class McpToolAdmin(AuditedChangeAdmin, InstanceModelAdmin):
    view_action = "skill.view"
    change_action = "skill.edit"
    add_action = delete_action = None  # tools come from the server (Refresh tools) and go with it
    form = McpToolForm
    list_display = ["tool_name", "server", "remote_name", "agent_list", "enabled", "requires_approval", "calls",
                    "success_rate", "last_error", "state"]
    list_filter = ["server", "enabled", "requires_approval"]
    list_select_related = ["server"]
    search_fields = ["name", "remote_name", "description"]
    readonly_fields = ["server", "remote_name", "description", "schema", "read_only", "vanished_at"]
    fieldsets = [(None, {"fields": ["server", "remote_name", "description", "schema", "read_only", "vanished_at",
                                    "name", "agent_types", "enabled", "requires_approval"]})]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["fields"] = TOOL_FIELDS if self.has_change_permission(request, obj) else []
        return super().get_form(request, obj, change, **kwargs)

    def get_queryset(self, request):
        return mcp_tools_with_metrics(super().get_queryset(request))

    @admin.display(description="Name for agents", ordering="name")
    def tool_name(self, tool):
        return format_html("<code>{}</code>", tool.name)

    @admin.display(description="Agents")
    def agent_list(self, tool):
        return ", ".join(agent_label(t) for t in tool.agent_types) or "—"

    @admin.display(description="Input schema")
    def schema(self, tool):
        import json

        return format_html("<pre>{}</pre>", json.dumps(tool.input_schema, indent=2)[:5000])

    @admin.display(description="Calls", ordering="m_calls")
    def calls(self, tool):
        return tool.m_calls

    @admin.display(description="Success")
    def success_rate(self, tool):
        rate = mcp_metrics_of(tool).success_rate
        return "—" if rate is None else f"{rate:.0%}"

    @admin.display(description="Last error")
    def last_error(self, tool):
        return (tool.m_last_error or "")[:80] or "—"

    @admin.display(description="State")
    def state(self, tool):
        return "vanished" if tool.vanished_at else "listed"

    def save_model(self, request, obj, form, change):
        mcp_tool_update(actor=request.user, tool=obj, changes=form.changes(), **self.why(form))
