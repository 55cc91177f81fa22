import hashlib

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """An opaque bearer token; only its SHA-256 is stored, so a database leak leaks no token."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"token of {self.user_id} (expires {self.expires_at:%Y-%m-%d})"

    @staticmethod
    def hash_of(raw: str) -> str:
        """The stored form of the token `raw`."""
        return hashlib.sha256(raw.encode()).hexdigest()


class IdempotencyKey(models.Model):
    """The first answer to a POST with an `Idempotency-Key`, replayed for every retry of it.

    Written with its answer inside the transaction that does the work, so a row exists only
    for committed work and always holds the answer to replay (the columns refuse NULL). The
    unique constraint decides between concurrent duplicates: the second INSERT waits on the
    index, then replays this row.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="idempotency_keys"
    )
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    status_code = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="storefront_idempotency_key_once"),
        ]

    def __str__(self) -> str:
        return f"{self.key} of user {self.user_id}"
