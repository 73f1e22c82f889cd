"""Settings for the test suite: production behaviour with a throwaway secret."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-not-secret")
os.environ["DJANGO_DEBUG"] = "0"

from .settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Connections opened in database_sync_to_async worker threads are closed after
# each call, so none outlives the test database.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
