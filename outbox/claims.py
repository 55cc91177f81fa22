"""Send something once without holding a database transaction open across the network.

`send_once` claims the effect (a `SendClaim` row) in one short transaction, sends with no
transaction open, then marks the row sent in another. An SMTP server that hangs therefore holds
no lock: the claim's reference to an order is gone from the lock table before the first byte
goes out, so cancelling that order never waits for the mail server. A send that fails releases
the claim, so the task's retry sends.

The promise is at least once, never lost, and one copy in all but one case. A second run while
the first is sending meets its fresh claim and raises `ClaimHeld` (the task retries later and
then finds the effect done, or the claim released). A run that died mid-send leaves a claim
that the next run takes over once it is older than `CLAIM_LEASE`. The one duplicate: the mail
server accepted the message and the database failed before the mark committed; that claim goes
stale and the task's retry sends a second copy after the lease.
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from core.retries import RetryLater
from outbox.models import SendClaim

logger = logging.getLogger(__name__)

# Longer than any run can hold a claim (the hard time limit is 90 s; EMAIL_TIMEOUT bounds each
# SMTP step), so a claim older than this belongs to a run that is dead.
CLAIM_LEASE = timedelta(minutes=5)


class ClaimHeld(RetryLater):
    """Another run is sending this right now: retry later (the task policies retry it)."""


def send_once(
    *,
    model: type[SendClaim],
    lookup: dict[str, Any],
    send: Callable[[], object],
    defaults: dict[str, Any] | None = None,
) -> bool:
    """Run `send()` unless the `model` row matching `lookup` says it ran; return whether it ran.

    Call outside any transaction (a task's body): the claim and the mark must commit on their
    own. `defaults` fill a new claim row. Raises `ClaimHeld` while another run holds a fresh
    claim, and whatever `send` raises (after releasing the claim).
    Sends no signals, requests no tasks.
    """
    claimed_at = _claim(model=model, lookup=lookup, defaults=defaults or {})
    if claimed_at is None:
        return False
    claim = model.objects.filter(**lookup, claimed_at=claimed_at, sent_at__isnull=True)
    try:
        send()
    except BaseException:
        _release(claim)
        raise
    if not claim.update(sent_at=timezone.now()):
        logger.warning(
            "a send outlived its claim's lease; another run may send it again",
            extra={"claim": model._meta.label, "lookup": repr(lookup)},
        )
    return True


def _claim(
    *, model: type[SendClaim], lookup: dict[str, Any], defaults: dict[str, Any]
) -> datetime | None:
    """Take the claim (a new row, or a stale one); None when the effect is done already.

    Each statement commits on its own: the INSERT's unique key makes a concurrent claimer wait
    only for that INSERT, and the takeover is a guarded UPDATE, so two runs never both win.
    """
    now = timezone.now()
    row, created = model.objects.get_or_create(**lookup, defaults={**defaults, "claimed_at": now})
    if created:
        return now
    if row.sent_at is not None:
        return None
    stale = model.objects.filter(pk=row.pk, sent_at__isnull=True, claimed_at__lte=now - CLAIM_LEASE)
    if stale.update(claimed_at=now):
        logger.warning(
            "took over a stale send claim: the run that held it died",
            extra={"claim": model._meta.label, "lookup": repr(lookup)},
        )
        return now
    raise ClaimHeld(f"{model._meta.label} {lookup!r} is being sent by another run")


def _release(claim) -> None:
    """Drop a claim whose send failed, so a retry sends; if the database is down too, the claim
    goes stale and a run after the lease sends."""
    try:
        claim.delete()
    except Exception as error:
        logger.warning(
            "a failed send's claim was not released; it is taken over after the lease",
            extra={"claim": claim.model._meta.label, "error": repr(error)},
        )
