import json
import os
from pathlib import Path

from django.core.management.base import BaseCommand

from spokestack.demo import demo_credentials, seed_demo


class Command(BaseCommand):
    help = "Create the demo instances, their admins and clients (skips what exists)."

    def add_arguments(self, parser):
        parser.add_argument("--erp-url", default="", help="Point the demo instances at the sample ERP there.")
        parser.add_argument("--credentials", default="",
                            help="Write a fresh API token per demo instance to this file (mode 0600) for the demo runs.")

    def handle(self, *args, **options):
        created = seed_demo(erp_url=options["erp_url"])
        for line in created:
            self.stdout.write(f"  created {line}")
        self.stdout.write(self.style.SUCCESS(f"Demo ready ({len(created)} new object(s))."))
        if options["credentials"]:
            path = Path(options["credentials"])
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(demo_credentials(), handle)
