"""Bearer-token authentication for the API (`Authorization: Bearer <token>`)."""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from spokestack.throttles import AuthFailureThrottle

from .services import api_token_authenticate


class BearerTokenAuthentication(BaseAuthentication):
    """A token of this instance, or 401. Failures are counted per client address: an address
    that spent its budget (REST_FRAMEWORK rate `auth_failures`) gets 429 for any token until
    the window frees one, before the token is looked up (spokestack/throttles.py)."""

    keyword = b"bearer"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        failures = AuthFailureThrottle()
        failures.refuse_if_spent(request)
        try:
            token = self._token(parts)
        except AuthenticationFailed:
            failures.record_failure()
            raise
        return token.user, token

    def _token(self, parts: list[bytes]):
        if len(parts) != 2:
            raise AuthenticationFailed("The Authorization header must be 'Bearer <token>' with no spaces in the token.")
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed("The bearer token contains characters a token never has.") from None
        token = api_token_authenticate(raw=raw)
        if token is None:
            raise AuthenticationFailed("Invalid, expired or revoked API token for this instance.")
        return token

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) when credentials are missing.
        return 'Bearer realm="api"'
