"""The base of every instance API view: it names its action and fails closed."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.views import APIView

from spokestack.accounts import policy
from spokestack.errors import InvalidInput, NotAllowed


def validated_body(serializer_class, data: Any) -> dict[str, Any]:
    """A JSON object body checked against its serializer; a key it does not name is refused (400
    naming the fields it takes), never silently ignored."""
    if not isinstance(data, dict):
        raise InvalidInput("Send a JSON object.")
    serializer = serializer_class(data=data)
    unknown = sorted(set(data) - set(serializer.fields))
    if unknown:
        raise InvalidInput(f"{unknown[0]}: is not a field here; send {', '.join(serializer.fields)}.",
                           details={unknown[0]: ["unknown field"]})
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class InstanceApiView(APIView):
    """Every request must be allowed by the access policy (`spokestack.accounts.policy`) before
    the handler runs: `action` names the policy row, one for the view or one per HTTP method
    (`{"get": "run.view", "delete": "run.cancel"}`). A view that names none for a method refuses
    everyone (fail closed). This is the role-level check; the services check the object's client
    again, and the selectors scope what is found."""

    action: str | dict[str, str] | None = None

    def policy_action(self, request) -> str | None:
        if isinstance(self.action, dict):
            method = request.method.lower()
            if method == "head":
                method = "get"
            elif method == "options":  # the schema of an endpoint is shown to whoever may read it
                method = "get" if "get" in self.action else next(iter(self.action), "")
            return self.action.get(method)
        return self.action

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        action = self.policy_action(request)
        if action is None:
            raise NotAllowed("This endpoint names no access rule, so it answers no one.")
        policy.require(request.user, action)

    def body(self) -> dict[str, Any]:
        """The JSON object the client sent (a copy), or 400 when it sent something else."""
        if not isinstance(self.request.data, dict):
            raise ParseError("send a JSON object")
        return dict(self.request.data)
