"""The Celery application: configured from Django settings (`CELERY_*`), tasks autodiscovered."""

import os

from celery import Celery
from celery.signals import beat_init, celeryd_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("stockwire")
# The app of every thread, not only of the one that made it: apps below config reach it as
# `celery.current_app` (config is the composition root; nothing imports it).
app.set_default()
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


NO_BROKER_MESSAGE = (
    "No broker is configured, so tasks run in the web process and there is nothing for a {role} "
    "to do. Set REDIS_URL (or CELERY_BROKER_URL), e.g. REDIS_URL=redis://127.0.0.1:6379/0 make "
    "{role}; without one, `make run` runs the periodic tasks itself."
)


@celeryd_init.connect(dispatch_uid="config.celery.worker_refused_without_broker")
def worker_refused_without_broker(**kwargs) -> None:
    """Stop a worker at start-up when no broker is configured: it would otherwise connect to
    the in-memory stand-in (or retry RabbitMQ on localhost forever) and never see a task."""
    _refuse_without_broker(role="worker")


@beat_init.connect(dispatch_uid="config.celery.beat_refused_without_broker")
def beat_refused_without_broker(**kwargs) -> None:
    """Stop beat at start-up when no broker is configured: what it sends would reach nobody."""
    _refuse_without_broker(role="beat")


def _refuse_without_broker(*, role: str) -> None:
    from django.conf import settings

    if settings.CELERY_TASK_ALWAYS_EAGER:
        raise SystemExit(NO_BROKER_MESSAGE.format(role=role))
