"""The WebSocket routes, for config.asgi to mount."""

from channels.auth import AuthMiddlewareStack
from django.urls import path

from live.consumers import OrdersSocket, StaffSocket, StockSocket, TokenUser


def websocket_urlpatterns(*, token_user: TokenUser) -> list:
    """The three sockets; `token_user(raw=…)` answers the active user of an API token or None.

    Only the staff socket reads the session (the admin's log-in): the others never pay for it.
    """
    return [
        path("ws/v1/orders", OrdersSocket.as_asgi(token_user=token_user)),
        path("ws/v1/stock", StockSocket.as_asgi()),
        path("ws/v1/staff", AuthMiddlewareStack(StaffSocket.as_asgi(token_user=token_user))),
    ]
