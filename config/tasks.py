"""Diagnostic Celery tasks: probes of the worker deployment, as /readyz is of the web one.

They show an operator (and the worker tests) that workers run tasks, finish them on a warm
shutdown and run a lost one again with one effect.
"""

import os
import re
import socket
import time
from pathlib import Path

from celery import shared_task
from django.conf import settings

_DIAGNOSTIC_KEY = re.compile(r"^[a-z0-9-]{1,64}$")


@shared_task(name="stockwire.ping", ignore_result=False)
def ping() -> str:
    """Answer "pong": lets an operator (and the test suite) see that a worker runs tasks."""
    return "pong"


def diagnostics_dir() -> Path:
    return Path(settings.MEDIA_ROOT) / "diagnostics"


@shared_task(name="stockwire.slow_mark")
def slow_mark(*, key: str, seconds: float) -> None:
    """Take `seconds`, then leave the mark `<key>.done` once, however often the task runs.

    A slow task with an observable, idempotent effect: it shows an operator (and the tests) that
    a stopping worker finishes what it started and that a task lost with its worker runs again
    elsewhere with one effect. Every start is logged to `<key>.runs` with the worker's host.
    """
    if not _DIAGNOSTIC_KEY.match(key):
        raise ValueError("key must be 1-64 characters of a-z, 0-9 and -")
    folder = diagnostics_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{key}.runs", "a") as runs:
        runs.write(f"{socket.gethostname()} {os.getpid()}\n")
    time.sleep(seconds)
    try:
        with open(folder / f"{key}.done", "x") as done:
            done.write(f"{os.getpid()}\n")
    except FileExistsError:
        return
