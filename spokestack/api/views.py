"""The base of every instance API view: it fails closed."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.views import APIView

from spokestack.accounts.roles import roles_of
from spokestack.errors import NotAllowed


class InstanceApiView(APIView):
    """A user of this instance without any role gets nothing from the endpoints built on this;
    each service then checks what the role may do."""

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        if not request.user.is_superuser and not roles_of(request.user):
            raise NotAllowed("Your account has no role in this instance.")

    def body(self) -> dict[str, Any]:
        """The JSON object the client sent (a copy), or 400 when it sent something else."""
        if not isinstance(self.request.data, dict):
            raise ParseError("send a JSON object")
        return dict(self.request.data)
