"""`manage.py access_matrix`: the access policy's table as Markdown (the README's roles matrix)."""

from django.core.management.base import BaseCommand

from spokestack.accounts.policy import matrix_markdown


class Command(BaseCommand):
    help = "Print who may do what (spokestack/accounts/policy.py) as a Markdown table."

    def handle(self, *args, **options) -> None:
        self.stdout.write(matrix_markdown(), ending="")
