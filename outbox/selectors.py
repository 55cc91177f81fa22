from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Min, Q
from django.utils import timezone

from outbox.models import OutboxMessage
from outbox.services import redeliver_after


@dataclass(frozen=True)
class OutboxBacklog:
    pending: int
    oldest_created_at: datetime | None
    in_progress: int
    overdue: int


def outbox_backlog() -> OutboxBacklog:
    """Count what the outbox still owes: requests the broker has not taken (`pending`, with the
    oldest), requests published and not ended (`in_progress`), and of those the ones past the
    redelivery deadline (`overdue`, the relay re-sends them). One query over the open rows."""
    open_rows = OutboxMessage.objects.filter(done_at__isnull=True, failed_at__isnull=True)
    pending = Q(published_at__isnull=True)
    row = open_rows.aggregate(
        pending=Count("id", filter=pending),
        oldest=Min("created_at", filter=pending),
        in_progress=Count("id", filter=~pending),
        overdue=Count("id", filter=Q(published_at__lte=timezone.now() - redeliver_after())),
    )
    return OutboxBacklog(
        pending=row["pending"],
        oldest_created_at=row["oldest"],
        in_progress=row["in_progress"],
        overdue=row["overdue"],
    )
