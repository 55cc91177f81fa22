"""Project-wide receivers: database session settings and the end of a request's log context."""

from django.conf import settings
from django.core.signals import request_finished
from django.db.backends.signals import connection_created
from django.dispatch import receiver

from config.logging import request_id_var


@receiver(connection_created, dispatch_uid="config.set_postgres_timeouts")
def set_postgres_timeouts(sender, connection, **kwargs) -> None:
    """Bound statements and lock waits so a stuck lock fails fast instead of hanging a worker."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('statement_timeout', %s, false),"
            " set_config('lock_timeout', %s, false)",
            [f"{settings.DB_STATEMENT_TIMEOUT_MS}ms", f"{settings.DB_LOCK_TIMEOUT_MS}ms"],
        )


@receiver(request_finished, dispatch_uid="config.clear_request_id")
def clear_request_id(sender, **kwargs) -> None:
    """Stop stamping the finished request's id on lines logged by this thread afterwards."""
    request_id_var.set("-")
