from django.core.management.base import BaseCommand

from spokestack.demo import seed_demo


class Command(BaseCommand):
    help = "Create the demo instances, their admins and clients (skips what exists)."

    def handle(self, *args, **options):
        created = seed_demo()
        for line in created:
            self.stdout.write(f"  created {line}")
        self.stdout.write(self.style.SUCCESS(f"Demo ready ({len(created)} new object(s))."))
