"""Retry policies shared by the tasks of several apps, as `shared_task` options."""

from smtplib import SMTPException

from PIL import UnidentifiedImageError

# An SMTP outage of about an hour is ridden out: retries 1, 2, 4 … 600 s apart, with jitter.
# OSError covers the connection itself (refused, reset, timed out).
EMAIL_RETRY = {
    "autoretry_for": (SMTPException, OSError),
    "retry_backoff": True,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 10,
}

# A storage hiccup (a full disk, a network file system that went away) is ridden out the same
# way. A file that is not there, or not an image, will not be by waiting: it fails at once and
# is kept as a TaskFailure for staff.
STORAGE_RETRY = {
    **EMAIL_RETRY,
    "autoretry_for": (OSError,),
    "dont_autoretry_for": (FileNotFoundError, UnidentifiedImageError),
}
