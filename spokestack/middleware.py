"""One base for the project's middleware that answer before a request or rewrite its response,
under WSGI and ASGI alike (daphne runs the chain async: a sync-only middleware there would cost
a thread hop per request)."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpResponse


class ResponseMiddleware:
    """`before(request)` may answer at once; `after(request, response)` may replace the answer."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        return self.before(request) or self.after(request, self.get_response(request))

    async def _acall(self, request):
        return self.before(request) or self.after(request, await self.get_response(request))

    def before(self, request) -> HttpResponse | None:
        return None

    def after(self, request, response: HttpResponse) -> HttpResponse:
        return response
