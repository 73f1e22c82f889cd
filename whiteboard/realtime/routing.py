"""The WebSocket URLs: one board endpoint, everything else refused."""

from channels.security.websocket import WebsocketDenier
from django.urls import re_path

from .consumer import BoardConsumer

websocket_urlpatterns = [
    re_path(r"^ws/boards/(?P<slug>[a-z0-9-]{1,64})/\Z", BoardConsumer.as_asgi()),
    # Any other path is refused at the handshake (HTTP 403), not with a 500.
    re_path(r"", WebsocketDenier.as_asgi()),
]
