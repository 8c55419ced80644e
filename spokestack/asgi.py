"""ASGI entry point (daphne): Django for HTTP, Channels for websockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spokestack.settings.dev")
django_application = get_asgi_application()

from .db import refuse_transaction_pooling  # noqa: E402

refuse_transaction_pooling()  # a web process behind transaction pooling would mix instances' schemas

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from .realtime import InstanceScopeMiddleware, SameOriginValidator  # noqa: E402
from .routing import websocket_urlpatterns  # noqa: E402


def _daphne_leaves_form_bodies_to_django() -> None:
    """Twisted (under daphne) parses every POSTed multipart or form body into `request.args`, which
    daphne never reads: a document upload was held and parsed twice, and a malformed multipart body
    got Twisted's bare 400 page instead of the API's error envelope (Django parses the body and
    answers). Twisted's Request takes parsePOSTFormSubmission=False for exactly this; daphne (4.2)
    does not pass it, so it is defaulted here, in the daphne process only."""
    try:
        from daphne.http_protocol import WebRequest
    except ImportError:  # another ASGI server
        return
    if getattr(WebRequest, "_spokestack_no_form_parsing", False):
        return
    original = WebRequest.__init__

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("parsePOSTFormSubmission", False)
        original(self, *args, **kwargs)

    WebRequest.__init__ = __init__
    WebRequest._spokestack_no_form_parsing = True


_daphne_leaves_form_bodies_to_django()

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": SameOriginValidator(InstanceScopeMiddleware(URLRouter(websocket_urlpatterns))),
    }
)
