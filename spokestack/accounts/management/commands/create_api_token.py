"""The first API token of an instance, without the admin.

Every other way to make a token needs a credential already (a token for POST /api/v1/tokens, or
an admin session and its CSRF token), so a new integration starts here: an operator with shell
access issues a token for an existing user. The token acts with that user's role.
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context

from spokestack.errors import DomainError
from spokestack.tenancy.models import Instance

from ...services import api_token_create


class Command(BaseCommand):
    help = ("Issue an API token for a user of an instance (no admin needed). Prints only the token on "
            "stdout, so `TOKEN=$(manage.py create_api_token alpha --email admin@alpha.localhost)` works; "
            "it is shown once.")

    def add_arguments(self, parser):
        parser.add_argument("instance", help="The instance's schema name (alpha) or one of its hosts (alpha.localhost).")
        parser.add_argument("--email", required=True, help="The user the token acts as; their role applies.")
        parser.add_argument("--name", default="first token", help="What will use the token, e.g. 'ERP sync'.")
        parser.add_argument("--expires-in-days", type=int, default=None, help="Default: no expiry (revoke it instead).")

    def handle(self, *args, **options):
        instance = self._instance(options["instance"])
        days = options["expires_in_days"]
        if days is not None and days < 1:
            raise CommandError("--expires-in-days must be 1 or more.")
        expires_at = timezone.now() + timedelta(days=days) if days else None
        email = get_user_model().objects.normalize_email(options["email"]).lower()
        with schema_context(instance.schema_name):
            user = get_user_model().objects.filter(username=email).first()
            if user is None or not user.is_active:
                raise CommandError(f"No active user {email} in {instance.name} (schema {instance.schema_name}).")
            try:
                issued = api_token_create(user=user, name=options["name"], expires_at=expires_at)
            except DomainError as exc:
                raise CommandError(exc.message) from exc
        self.stderr.write(f"API token '{issued.token.name}' for {email} in {instance.name}: it is shown once, "
                          "send it as 'Authorization: Bearer <token>' to the instance's host.")
        self.stdout.write(issued.raw)

    @staticmethod
    def _instance(key: str) -> Instance:
        host = key.split(":", 1)[0].lower()
        instance = (Instance.objects.filter(schema_name=key).first()
                    or Instance.objects.filter(domains__domain=host).first())
        if instance is None or instance.schema_name == get_public_schema_name():
            raise CommandError(f"No instance with schema or host {key!r}; the public schema has no API tokens.")
        return instance
