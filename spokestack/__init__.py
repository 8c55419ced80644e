"""SpokeStack: the Django project package (settings, URLs, ASGI, Celery) and the platform shell."""

from .celery import app as celery_app

__all__ = ["celery_app"]
