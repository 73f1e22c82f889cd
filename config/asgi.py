"""ASGI entry point: HTTP through Django, WebSockets through Channels.

Django is set up before anything imports models; the WebSocket stack refuses a
foreign or missing Origin (HTTP 403; scheme, host and port must match, see
whiteboard/origin.py) before authentication or routing runs. Authentication is
channels' AuthMiddlewareStack with its session middleware read-only
(`SessionReader`). The operator's endpoints come first of all.
"""

import atexit
import os
import sys

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

# The event loop and the database thread share the GIL (docs/deploy.md).
sys.setswitchinterval(settings.WHITEBOARD_SWITCH_INTERVAL_MS / 1000)

from channels.auth import AuthMiddleware  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.sessions import (  # noqa: E402
    CookieMiddleware,
    InstanceSessionWrapper,
    SessionMiddleware,
)

from config import daphne_compat  # noqa: E402
from whiteboard import metrics  # noqa: E402
from whiteboard.operations import OperationsEndpoints  # noqa: E402
from whiteboard.origin import OriginValidator  # noqa: E402
from whiteboard.realtime import process  # noqa: E402
from whiteboard.realtime.routing import websocket_urlpatterns  # noqa: E402

daphne_compat.install(on_shutdown=process.shut_down)
# This process's gauges stop counting when it exits (a killed one's are
# dropped at the next scrape, whiteboard/metrics.py).
atexit.register(metrics.forget_this_process)


class SessionReader(SessionMiddleware):
    """channels' SessionMiddleware, without its wrapper around every `send`.

    The wrapper saves a changed session only on `http.response.start`, which a
    WebSocket never sends, yet it inspected the session at each frame sent:
    5 % of the server's CPU on the bench's `many` scenario (py-spy, issue 11).
    The scope gets the same lazily loaded session.
    """

    async def __call__(self, scope, receive, send):
        wrapper = InstanceSessionWrapper(scope, send)
        await wrapper.resolve_session()
        return await self.inner(wrapper.scope, receive, send)


# /healthz, /readyz and /metrics are answered in front of Django
# (whiteboard/operations.py says why).
application = OperationsEndpoints(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": OriginValidator(
                CookieMiddleware(
                    SessionReader(AuthMiddleware(URLRouter(websocket_urlpatterns)))
                )
            ),
        }
    )
)
