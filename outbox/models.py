import uuid

from django.db import models


class OutboxMessage(models.Model):
    """A Celery task requested inside a business transaction, kept until the broker has it.

    The id is made in Python (not by the database) so a request can be written with
    `INSERT … ON CONFLICT DO NOTHING` and still be handed to the broker by id after the commit;
    it doubles as the Celery task id.
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
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(
                fields=["created_at"],
                name="outbox_pending_idx",
                condition=models.Q(sent_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        state = "sent" if self.sent_at else f"pending ({self.attempts} attempts)"
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
    """A task that failed for good (no retry left): kept for staff, who see it in the admin.

    Written by a receiver of Celery's `task_failure`, which fires only on the final failure,
    never for a failure that will be retried.
    """

    task_name = models.CharField(max_length=200, db_index=True)
    task_id = models.CharField(max_length=255, blank=True)
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)
    exception = models.TextField()
    traceback = models.TextField(blank=True)
    hostname = models.CharField(max_length=200, blank=True)
    failed_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-failed_at"]

    def __str__(self) -> str:
        return f"{self.task_name} failed at {self.failed_at:%Y-%m-%d %H:%M:%S}"
