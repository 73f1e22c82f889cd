"""Settings for the test suite: production behaviour with a throwaway secret."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-not-secret")
os.environ["DJANGO_DEBUG"] = "0"

from .settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Connections opened in database_sync_to_async worker threads are closed after
# each call, so none outlives the test database.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405

# No background thumbnails in the test process: their child process would set
# up these settings afresh and open the configured database, not the test
# database pytest-django made. Tests call whiteboard.thumbnails directly, and
# the live tests' servers run the real job.
WHITEBOARD_THUMBNAIL_SECONDS = 0
