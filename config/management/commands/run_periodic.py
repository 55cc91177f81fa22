"""`manage.py run_periodic`: beat's schedule, run in this process, for the embedded default.

Without a broker there is no worker and no beat, and tasks run where they are requested. This
command stands in for beat: it runs each entry of CELERY_BEAT_SCHEDULE on its schedule (the
same `schedule` and `crontab` objects beat reads), in-process, so unpaid orders expire after
RESERVATION_TTL_MINUTES and the outbox relay, digests and reconciles run. `make run` starts it
beside the development server and stops it with it. With a broker configured it refuses: run
one `celery beat` instead.
"""

import logging
import signal
import threading
from datetime import datetime, timedelta

from celery import current_app
from celery.schedules import BaseSchedule, schedule
from django.conf import settings
from django.core.management.base import CommandError
from django.utils import timezone

from core.commands import DatabaseCommand
from outbox.services import connections_renew

logger = logging.getLogger("stockwire.periodic")

# The longest sleep between looks at the schedule: short enough to stop promptly.
MAX_SLEEP_SECONDS = 5.0


def schedule_of(entry: dict) -> BaseSchedule:
    """The entry's schedule as beat reads it: a number of seconds is an interval."""
    when = entry["schedule"]
    if isinstance(when, BaseSchedule):
        return when
    return schedule(run_every=timedelta(seconds=when))


def due_entries(entries: dict[str, dict], last_run_at: dict[str, datetime]) -> list[str]:
    """The names of the entries whose next run is due, given when each last ran."""
    return [
        name for name, entry in entries.items() if schedule_of(entry).is_due(last_run_at[name])[0]
    ]


def run_entry(name: str, entry: dict) -> bool:
    """Run one entry's task in this process; log its failure and keep going, as beat would.
    Return whether it succeeded."""
    connections_renew()
    try:
        result = current_app.tasks[entry["task"]].apply(
            args=entry.get("args", ()), kwargs=entry.get("kwargs", {})
        )
        if result.failed():
            logger.error("periodic task %s failed: %r", name, result.result)
            return False
        if result.result:
            logger.info("periodic task %s: %s", name, result.result)
        return True
    except Exception:
        logger.exception("periodic task %s failed", name)
        return False
    finally:
        connections_renew()


class Command(DatabaseCommand):
    help = (
        "Run the periodic tasks (CELERY_BEAT_SCHEDULE) in this process on their schedules, for "
        "the embedded default without a broker; --once runs each once and exits."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="run every task once, then exit")

    def handle(self, *args, once: bool, **options) -> None:
        if not settings.CELERY_TASK_ALWAYS_EAGER:
            raise CommandError(
                "A broker is configured, so periodic tasks are beat's work: run one "
                "`make beat` (celery beat) and workers instead."
            )
        current_app.loader.import_default_modules()
        entries = settings.CELERY_BEAT_SCHEDULE
        if once:
            failed = [name for name, entry in entries.items() if not run_entry(name, entry)]
            if failed:
                raise CommandError(f"{len(failed)} periodic task(s) failed: {', '.join(failed)}")
            return
        # SIGTERM (how `make run` stops it) and Ctrl-C end it between tasks, never inside one.
        stopping = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())
        self.stdout.write(f"running {len(entries)} periodic tasks on their schedules")
        started = timezone.now()
        last_run_at = dict.fromkeys(entries, started)
        while not stopping.is_set():
            for name in due_entries(entries, last_run_at):
                if stopping.is_set():
                    break
                last_run_at[name] = timezone.now()
                run_entry(name, entries[name])
            stopping.wait(MAX_SLEEP_SECONDS)
