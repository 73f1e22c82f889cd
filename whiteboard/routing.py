from django.urls import re_path

from .consumers import BoardConsumer

# Only this path is routed; any other WebSocket path is refused at the handshake.
websocket_urlpatterns = [
    re_path(r"^ws/boards/(?P<slug>[a-z0-9-]{1,64})/\Z", BoardConsumer.as_asgi()),
]
