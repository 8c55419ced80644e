from django.core.management.base import BaseCommand

from versions.services import catalog_sync


class Command(BaseCommand):
    help = "Mirror the core-agent registry into the public version catalog (idempotent); new releases fan out."

    def add_arguments(self, parser):
        parser.add_argument("--hide", action="append", default=[], metavar="TYPE:VERSION",
                            help="Keep a version out of the catalog (simulate a later release).")

    def handle(self, *args, hide, **options):
        hidden = [tuple(item.split(":", 1)) for item in hide]
        result = catalog_sync(hidden=hidden)
        self.stdout.write(f"catalog: {len(result.created)} new, {result.updated} updated, "
                          f"{len(result.fanouts)} release fan-out(s) queued")
        for item in result.created:
            self.stdout.write(f"  + {item}")
