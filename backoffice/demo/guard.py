"""Demo commands write accounts whose passwords the README publishes: development only."""

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from core.commands import DatabaseCommand

REFUSAL = (
    "DEBUG is off, so this looks like a real deployment, and {command} would create accounts "
    "whose passwords are published in the README. Run it in development, or add --force if "
    "this really is a throwaway demo."
)


class DevelopmentOnlyCommand(DatabaseCommand):
    """A command refused with DEBUG off unless `--force` is given."""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.add_argument(
            "--force",
            action="store_true",
            help="run even with DEBUG off (a throwaway demo deployment)",
        )
        return parser

    def execute(self, *args, **options):
        if not settings.DEBUG and not options.get("force"):
            raise CommandError(REFUSAL.format(command=self._name()))
        return super().execute(*args, **options)

    def _name(self) -> str:
        return self.__module__.rsplit(".", 1)[-1]
