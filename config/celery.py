"""The Celery application: configured from Django settings (`CELERY_*`), tasks autodiscovered."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("stockwire")
# The app of every thread, not only of the one that made it: apps below config reach it as
# `celery.current_app` (config is the composition root; nothing imports it).
app.set_default()
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
