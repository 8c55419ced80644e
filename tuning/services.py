"""Writes for clients and tuning."""

from __future__ import annotations

from django.db import transaction
from django.utils.text import slugify

from spokestack.errors import Conflict, InvalidInput

from .models import Client, Vertical


@transaction.atomic
def client_create(*, name: str, vertical: str = Vertical.OTHER, region: str = "", language: str = "",
                  slug: str | None = None) -> Client:
    slug = slug or slugify(name)[:60]
    if not slug:
        raise InvalidInput("Give the client a name with at least one letter or digit.", details={"name": name})
    if vertical not in Vertical.values:
        raise InvalidInput(f"Unknown vertical '{vertical}'. Choose one of: {', '.join(Vertical.values)}.")
    if Client.objects.filter(slug=slug).exists():
        raise Conflict(f"A client with the slug '{slug}' already exists.", details={"slug": slug})
    client = Client(name=name.strip(), slug=slug, vertical=vertical, region=region, language=language)
    client.full_clean()
    client.save()
    return client
