from django.core.management.base import BaseCommand, CommandError

from spokestack.errors import DomainError
from spokestack.tenancy.models import Instance
from spokestack.tenancy.services import instance_set_status


class Command(BaseCommand):
    help = "Suspend or re-activate an instance (a suspended one answers 403 everywhere)."

    def add_arguments(self, parser):
        parser.add_argument("schema")
        parser.add_argument("status", choices=Instance.Status.values)
        parser.add_argument("--reason", default="")

    def handle(self, *args, **options):
        instance = Instance.objects.filter(schema_name=options["schema"]).first()
        if instance is None:
            raise CommandError(f"No instance with schema {options['schema']}.")
        try:
            instance_set_status(instance=instance, status=options["status"], reason=options["reason"])
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(self.style.SUCCESS(f"{instance.name}: {instance.status}"))
