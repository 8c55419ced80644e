"""Production: every secret from the environment, HTTPS assumed, nothing permissive by default."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env, env_bool

DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY")
if len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be at least 32 characters in production.")
if EGRESS_ALLOW_LOOPBACK or env_bool("EGRESS_ALLOW_LOOPBACK", False):  # noqa: F405
    raise ImproperlyConfigured("EGRESS_ALLOW_LOOPBACK is a development allowance; production refuses it.")
EGRESS_LOOPBACK_PORTS = []
if not SPOKESTACK_SECRET_KEYS:  # noqa: F405
    raise ImproperlyConfigured("Set SPOKESTACK_SECRET_KEYS (comma-separated, current key first) in production.")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = int(env("DJANGO_SECURE_HSTS_SECONDS", "31536000"))
SECURE_CONTENT_TYPE_NOSNIFF = True
EMAIL_BACKEND = env("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
