"""The test suite: the same stack as production (PostgreSQL, Redis), faster password hashing."""

import os
from urllib.parse import urlsplit

from .base import *  # noqa: F403
from .base import env, env_bool, env_list

DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY", "test-only-secret-key-0123456789abcdef0123456789")
ALLOWED_HOSTS = [".localhost", "localhost", "127.0.0.1", "testserver"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# Tests never reach the real API: a key counts only when ANTHROPIC_BASE_URL points at a local
# fake Messages API (the suite's worker processes); otherwise the offline model answers.
_model_url = urlsplit(os.environ.get("ANTHROPIC_BASE_URL", ""))
ANTHROPIC_API_KEY = env("ANTHROPIC_API_KEY", "") if _model_url.hostname in {"127.0.0.1", "localhost", "::1"} else ""
# Tests get the loopback allowance per test (the `egress_loopback` fixture), never globally.
# Off unless a test (or the test suite's worker process) turns it on for named ports.
EGRESS_ALLOW_LOOPBACK = env_bool("EGRESS_ALLOW_LOOPBACK", False)
EGRESS_LOOPBACK_PORTS = [int(port) for port in env_list("EGRESS_LOOPBACK_PORTS", "")]
SPOKESTACK_SECRET_KEYS: list[str] = []
# Stored documents: the test session's own (its shard's state directory, emptied when the session
# starts), shared by its worker and daphne processes, which inherit SPOKESTACK_TEST_STATE.
MEDIA_ROOT = env("DJANGO_MEDIA_ROOT", os.path.join(
    os.environ.get("SPOKESTACK_TEST_STATE") or str(BASE_DIR / ".spokestack" / "test"), "media"))  # noqa: F405
