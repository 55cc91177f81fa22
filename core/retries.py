"""Retry policies shared by the tasks of several apps, as `shared_task` options."""

import random
from smtplib import SMTPException

from celery import Task
from django.db import InterfaceError, OperationalError
from PIL import UnidentifiedImageError

# Retry n waits min(2**n, 600) seconds, stretched by up to 20 % so tasks that failed together
# do not retry together. Never shortened: Celery's own jitter may cut a wait to nothing, and
# then no schedule can promise how long an outage is ridden out.
RETRY_BACKOFF_MAX_SECONDS = 600
RETRY_JITTER = 0.2
# An outage of about an hour (a mail server, a storage mount, a database failover) is ridden
# out: retries go on until their waits, without the jitter, add up to this.
RIDE_OUT_SECONDS = 3600
# Transient database failures: a dropped or refused connection, a failover, a lock or statement
# timeout, a deadlock. Not IntegrityError or DataError: waiting does not mend those.
TRANSIENT_DATABASE_ERRORS = (OperationalError, InterfaceError)


class RetryLater(Exception):
    """Another run holds this work right now: retry once it has finished (or died).

    The policies here cannot import the apps above core, so an app's "in hand elsewhere"
    subclasses this (`outbox.claims.ClaimHeld`: an e-mail another run is sending) and
    EMAIL_RETRY retries it.
    """


def retry_wait(retries: int) -> float:
    """Seconds before retry number `retries` + 1, without the jitter."""
    return float(min(RETRY_BACKOFF_MAX_SECONDS, 2**retries))


def _retries_to_ride_out(seconds: float) -> int:
    count, waited = 0, 0.0
    while waited < seconds:
        waited += retry_wait(count)
        count += 1
    return count


class BackoffTask(Task):
    """A task whose automatic retries wait 1, 2, 4 … 600 s, each stretched by up to 20 %."""

    retry_wait_longest = RETRY_BACKOFF_MAX_SECONDS * (1 + RETRY_JITTER)

    def retry(self, *args, countdown: float | None = None, eta=None, **options):
        if countdown is None and eta is None:
            countdown = retry_wait(self.request.retries) * random.uniform(1, 1 + RETRY_JITTER)
        return super().retry(*args, countdown=countdown, eta=eta, **options)


# 15 retries: 1 + 2 + … + 512 + 5 * 600 s = 67 minutes (up to 80 with the jitter), then the
# task fails for good and is kept as a TaskFailure that staff can re-run.
RIDE_OUT_RETRIES = _retries_to_ride_out(RIDE_OUT_SECONDS)

# OSError covers the connection itself (refused, reset, and a hung server's EMAIL_TIMEOUT);
# RetryLater is another run of the same e-mail sending right now.
EMAIL_RETRY = {
    "base": BackoffTask,
    "autoretry_for": (SMTPException, OSError, RetryLater, *TRANSIENT_DATABASE_ERRORS),
    "max_retries": RIDE_OUT_RETRIES,
}

# A storage hiccup (a full disk, a network file system that went away) is ridden out the same
# way. A file that is not there, or not an image, will not be by waiting: it fails at once and
# is kept as a TaskFailure for staff.
STORAGE_RETRY = {
    **EMAIL_RETRY,
    "autoretry_for": (OSError, *TRANSIENT_DATABASE_ERRORS),
    "dont_autoretry_for": (FileNotFoundError, UnidentifiedImageError),
}
