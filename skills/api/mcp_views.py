"""MCP server API on the instance host: list/create, read/change/delete, refresh the tool list,
list the tools and choose how each is exposed."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from spokestack.api.params import text_param
from spokestack.api.views import InstanceApiView, validated_body
from spokestack.errors import NotFound

from ..mcp import mcp_server_create, mcp_server_delete, mcp_server_update, mcp_tool_update, mcp_tools_refresh
from ..models import McpServer, McpTool
from ..selectors import mcp_server_get, mcp_servers_with_counts, mcp_tool_get, mcp_tools_with_metrics
from .mcp_serializers import (
    McpRefreshSerializer,
    McpServerSerializer,
    McpServerWriteSerializer,
    McpToolSerializer,
    McpToolWriteSerializer,
)


def _split_why(data: dict) -> tuple[dict, dict]:
    why = {key: data.pop(key) for key in ("reason", "ticket") if key in data}
    return data, why


class McpView(InstanceApiView):
    """Fails closed (InstanceApiView): policy `skill.view` to read, `skill.edit` to change."""

    def _server(self, server_id) -> McpServer:
        server = mcp_server_get(server_id=server_id)
        if server is None:
            raise NotFound("No such MCP server in this instance.", details={"server_id": str(server_id)})
        return server

    @staticmethod
    def _tools(server: McpServer):
        return mcp_tools_with_metrics(McpTool.objects.filter(server=server)).order_by("name")


class McpServerListView(McpView):
    action = {"get": "skill.view", "post": "skill.edit"}

    @extend_schema(responses=McpServerSerializer(many=True), summary="The instance's MCP servers.")
    def get(self, request):
        servers = mcp_servers_with_counts().order_by("name")
        return Response(McpServerSerializer(servers, many=True).data)

    @extend_schema(request=McpServerWriteSerializer, responses={201: McpServerSerializer},
                   summary="Add an MCP server (streamable HTTP). Its URL is vetted like a webhook's; list its tools "
                           "with POST …/refresh.")
    def post(self, request):
        data, why = _split_why(validated_body(McpServerWriteSerializer, request.data))
        server = mcp_server_create(actor=request.user, **data, **why)
        return Response(McpServerSerializer(server).data, status=status.HTTP_201_CREATED)


class McpServerDetailView(McpView):
    action = {"get": "skill.view", "patch": "skill.edit", "delete": "skill.edit"}

    @extend_schema(responses=McpServerSerializer, summary="An MCP server (its secret never shown).")
    def get(self, request, server_id):
        return Response(McpServerSerializer(self._server(server_id)).data)

    @extend_schema(request=McpServerWriteSerializer, responses=McpServerSerializer, summary="Change an MCP server.")
    def patch(self, request, server_id):
        server = self._server(server_id)
        changes, why = _split_why(validated_body(McpServerWriteSerializer, request.data))
        server = mcp_server_update(actor=request.user, server=server, changes=changes, **why)
        return Response(McpServerSerializer(server).data)

    @extend_schema(responses={204: None}, summary="Remove an MCP server and its tools.", parameters=[
        OpenApiParameter("reason", str, description="Why: kept in the audit log.")])
    def delete(self, request, server_id):
        mcp_server_delete(actor=request.user, server=self._server(server_id),
                          reason=text_param(request.query_params, "reason"))
        return Response(status=status.HTTP_204_NO_CONTENT)


class McpServerRefreshView(McpView):
    action = "skill.edit"

    @extend_schema(request=None, responses=McpRefreshSerializer,
                   summary="List the server's tools now: new ones arrive not exposed, known ones keep their "
                           "settings, vanished ones are marked. 400 naming the reason when the server cannot be "
                           "reached or is refused by the egress policy.")
    def post(self, request, server_id):
        server = mcp_tools_refresh(actor=request.user, server=self._server(server_id))
        server = mcp_servers_with_counts(McpServer.objects.filter(pk=server.pk)).get()
        return Response({"server": McpServerSerializer(server).data,
                         "tools": McpToolSerializer(self._tools(server), many=True).data})


class McpToolListView(McpView):
    action = "skill.view"

    @extend_schema(responses=McpToolSerializer(many=True), summary="The tools of an MCP server, with metrics.")
    def get(self, request, server_id):
        return Response(McpToolSerializer(self._tools(self._server(server_id)), many=True).data)


class McpToolDetailView(McpView):
    action = {"get": "skill.view", "patch": "skill.edit"}

    def _tool(self, server_id, tool_id) -> McpTool:
        tool = mcp_tool_get(server=self._server(server_id), tool_id=tool_id)
        if tool is None:
            raise NotFound("No such tool on this MCP server.", details={"tool_id": str(tool_id)})
        return tool

    @extend_schema(responses=McpToolSerializer, summary="One tool of an MCP server.")
    def get(self, request, server_id, tool_id):
        return Response(McpToolSerializer(self._tool(server_id, tool_id)).data)

    @extend_schema(request=McpToolWriteSerializer, responses=McpToolSerializer,
                   summary="Expose a tool (or not): its name for agents, agent types, approval.")
    def patch(self, request, server_id, tool_id):
        tool = self._tool(server_id, tool_id)
        changes, why = _split_why(validated_body(McpToolWriteSerializer, request.data))
        tool = mcp_tool_update(actor=request.user, tool=tool, changes=changes, **why)
        return Response(McpToolSerializer(tool).data)
