from django.core.management.base import BaseCommand, CommandError

from spokestack.errors import DomainError
from spokestack.tenancy.models import Instance
from spokestack.tenancy.services import instance_provision


class Command(BaseCommand):
    help = "Provision an agency instance: schema, host, role groups and its first admin."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--domain", required=True, help="Host the instance answers on, e.g. acme.localhost")
        parser.add_argument("--admin-email", required=True)
        parser.add_argument("--admin-password", help="Default: a random password, printed once.")
        parser.add_argument("--schema", help="Schema name. Default: the first label of the domain.")
        parser.add_argument("--tier", default=Instance.Tier.STARTER, choices=Instance.Tier.values)
        parser.add_argument("--region", default="")
        parser.add_argument("--language", default="en")
        parser.add_argument("--timezone", default="UTC")

    def handle(self, *args, **options):
        try:
            result = instance_provision(
                name=options["name"], domain=options["domain"], admin_email=options["admin_email"],
                admin_password=options["admin_password"], schema_name=options["schema"], tier=options["tier"],
                region=options["region"], language=options["language"], timezone=options["timezone"],
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(self.style.SUCCESS(f"Created {result.instance.name} (schema {result.instance.schema_name})"))
        self.stdout.write(f"  host:     {options['domain']}")
        self.stdout.write(f"  admin:    {result.admin.email}")
        self.stdout.write(f"  password: {result.admin_password}")
