from django.core.management.base import BaseCommand, CommandError

from spokestack.secrets import secrets_rotate


class Command(BaseCommand):
    help = ("Re-encrypt every stored secret (ERP keys, skill credentials) in every instance with the current "
            "key, the first of SPOKESTACK_SECRET_KEYS. Run it after adding a key in front; then drop the old one.")

    def handle(self, *args, **options):
        report = secrets_rotate()
        for failure in report.failed:
            self.stderr.write(f"could not decrypt: {failure}")
        summary = f"{report.rotated} secret(s) re-encrypted across {report.schemas} schema(s)"
        if report.failed:
            raise CommandError(f"{summary}; {len(report.failed)} could not be decrypted with any configured key.")
        self.stdout.write(self.style.SUCCESS(summary + "."))
