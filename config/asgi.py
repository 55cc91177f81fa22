"""The ASGI application: Django's views over HTTP, the live sockets (`live`) over WebSocket.

Served by Daphne: `make run` (its `runserver`) serves both from one process; in production
the compose file's `live` service serves `/ws/` and gunicorn (config.wsgi) the rest.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Django is set up before anything imports models (the consumers do).
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from live.routing import websocket_urlpatterns  # noqa: E402
from storefront.selectors import token_user  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        # A page of another site may not open a socket with the visitor's cookies: the
        # handshake must carry an Origin whose host is one of ALLOWED_HOSTS (else HTTP 403).
        "websocket": AllowedHostsOriginValidator(
            URLRouter(websocket_urlpatterns(token_user=token_user))
        ),
    }
)
