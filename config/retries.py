"""Retry policies shared by the tasks of several apps, as `shared_task` options."""

from smtplib import SMTPException

# An SMTP outage of about an hour is ridden out: retries 1, 2, 4 … 600 s apart, with jitter.
# OSError covers the connection itself (refused, reset, timed out).
EMAIL_RETRY = {
    "autoretry_for": (SMTPException, OSError),
    "retry_backoff": True,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 10,
}
