import uuid

from django.conf import settings
from django.db import models


class OutboxMessage(models.Model):
    """A Celery task requested inside a business transaction, kept until the task has done its
    work.

    States: pending (not handed to the broker yet) → published (`published_at`: the broker has
    it, or a worker is running or retrying it) → done (`done_at`: it returned) or failed
    (`failed_at`: it failed for good, and a TaskFailure row says why). A row published long
    ago and neither done nor failed was lost with a broker or a worker; the relay publishes it
    again (`redeliveries`).

    The id is made in Python (not by the database) so a request can be written with
    `INSERT … ON CONFLICT DO NOTHING` and still be handed to the broker by id after the commit;
    it doubles as the Celery task id, which is how a worker's signals find the row.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    task_name = models.CharField(max_length=200)
    kwargs = models.JSONField(default=dict)
    dedupe_key = models.CharField(
        max_length=200,
        null=True,
        blank=True,
        unique=True,
        help_text="Requests with the same key are one request (e.g. one e-mail per order).",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    published_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Last handed to the broker: by the commit, the relay, or the task's own retry.",
    )
    done_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Publishes the broker refused.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(
        null=True, blank=True, help_text="A relay is publishing this row until then."
    )
    redeliveries = models.PositiveIntegerField(
        default=0, help_text="Times the relay published it again after no end was seen."
    )
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(
                fields=["created_at"],
                name="outbox_open_idx",
                condition=models.Q(done_at__isnull=True, failed_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        if self.done_at:
            state = "done"
        elif self.failed_at:
            state = "failed"
        elif self.published_at:
            state = "published"
        else:
            state = f"pending ({self.attempts} refused)"
        return f"{self.task_name} {state}"


class SendClaim(models.Model):
    """A once-only external effect (an e-mail), claimed before it happens and marked after.

    A row with `sent_at` set is done; one without is a claim held by the run that wrote
    `claimed_at`, or a stale claim (older than `outbox.claims.CLAIM_LEASE`) left by a run that
    died, which the next run takes over. `outbox.claims.send_once` keeps the states.
    """

    claimed_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class TaskFailure(models.Model):
    """A task that failed for good (no retry left): kept for staff, who see it in the admin
    and may re-run it once the cause is fixed.

    Written by a receiver of Celery's `task_failure`, which fires only on the final failure,
    never for a failure that will be retried. A re-run is a new outbox request (`rerun_request`);
    if it fails too, it leaves a TaskFailure of its own.
    """

    task_name = models.CharField(max_length=200, db_index=True)
    task_id = models.CharField(max_length=255, blank=True)
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)
    exception = models.TextField()
    traceback = models.TextField(blank=True)
    hostname = models.CharField(max_length=200, blank=True)
    failed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    rerun_at = models.DateTimeField(null=True, blank=True)
    rerun_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    rerun_request = models.UUIDField(
        null=True, blank=True, help_text="The outbox request that runs the task again."
    )

    class Meta:
        ordering = ["-failed_at"]

    def __str__(self) -> str:
        return f"{self.task_name} failed at {self.failed_at:%Y-%m-%d %H:%M:%S}"
