"""The composition root: settings, URLs, the Celery app, WSGI/ASGI, and what they need to run.

Besides those: logging (its filter, formatter and middleware are named in the settings), the
health probes the URLs serve, the database session and request-end receivers, and the worker
diagnostics. All configure or probe the running process; no app imports them, and nothing
imports config but through `django.conf.settings` (`make lint` holds that).
"""

from config.celery import app as celery_app

__all__ = ["celery_app"]
