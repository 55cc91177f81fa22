"""The base of the project's management commands."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import InterfaceError, OperationalError


class DatabaseCommand(BaseCommand):
    """A command that works on the database: one that does not answer (down, restarting,
    refusing the connection) ends it with one line and exit 1, not Django's traceback."""

    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute(*args, **options)
        except (OperationalError, InterfaceError) as error:
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise CommandError(f"the database does not answer: {first_line}") from error
