"""ASGI entry point: HTTP through Django, WebSockets through Channels.

Django is set up before anything imports models; the WebSocket stack refuses a
foreign or missing Origin (HTTP 403; scheme, host and port must match, see
whiteboard/origin.py) before authentication or routing runs.
"""

import os
import sys

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

# The event loop and the database thread share the GIL (docs/deploy.md).
sys.setswitchinterval(settings.WHITEBOARD_SWITCH_INTERVAL_MS / 1000)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from config import daphne_compat  # noqa: E402
from whiteboard.origin import OriginValidator  # noqa: E402
from whiteboard.realtime import process  # noqa: E402
from whiteboard.realtime.routing import websocket_urlpatterns  # noqa: E402

daphne_compat.install(on_shutdown=process.shut_down)

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
