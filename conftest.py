"""Fixtures shared by every test: database vendor markers, real threads, real worker processes."""

import os
import socket
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.result import allow_join_result
from django.conf import settings
from django.db import connection, connections

from config.celery import app as celery_app
from live.publish import publisher
from outbox import services as outbox_services

PROJECT_DIR = Path(__file__).resolve().parent
# The project's packages, lowest layer or highest: import-linter's list is the one place that
# names them (tests/test_architecture.py checks it against the tree and INSTALLED_APPS).
PROJECT_PACKAGES: tuple[str, ...] = tuple(
    tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["tool"]["importlinter"][
        "root_packages"
    ]
)


def pytest_configure(config) -> None:
    """This run's own keys on the channel layer's Redis (groups, socket counts, stock windows),
    as it has its own cache database: runs sharing a Redis never hear each other's pushes or
    count each other's sockets. Through the environment, the servers tests start inherit it."""
    prefix = os.environ.setdefault("LIVE_LAYER_PREFIX", f"test-{uuid.uuid4().hex[:12]}:live")
    settings.LIVE_LAYER_PREFIX = prefix
    layer = settings.CHANNEL_LAYERS["default"]
    if "CONFIG" in layer:
        layer["CONFIG"]["prefix"] = prefix


def pytest_addoption(parser) -> None:
    parser.addoption(
        "--screenshots",
        metavar="DIR",
        default=None,
        help="write the browser tests' screenshots to DIR (make screenshots: docs/) "
        "instead of each test's temporary folder",
    )


def pytest_collection_modifyitems(config, items) -> None:
    """Skip `postgres` and `replica` tests on SQLite, and `redis`/`worker` tests without
    REDIS_URL, visibly."""
    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    needs_postgres = pytest.mark.skip(reason="needs PostgreSQL row locks (set DATABASE_URL)")
    needs_redis = pytest.mark.skip(reason="needs a real Redis server (set REDIS_URL)")
    for item in items:
        if item.get_closest_marker("replica") and not on_postgres:
            item.add_marker(
                pytest.mark.skip(
                    reason="points Django's PostgreSQL connection at its own primary and "
                    "replica: set DATABASE_URL to PostgreSQL"
                )
            )
        elif "postgres" in item.keywords and not on_postgres:
            item.add_marker(needs_postgres)
        if ("redis" in item.keywords or "worker" in item.keywords) and not settings.REDIS_URL:
            item.add_marker(needs_redis)
        if "worker" in item.keywords and not on_postgres:
            item.add_marker(
                pytest.mark.skip(reason="a worker process shares the test database: PostgreSQL")
            )


# Folders the running shop writes to and no test may: a test's media and mail go to its own
# temporary folder (`private_media` below, `child_process_env`).
SHOP_FOLDERS = (PROJECT_DIR / "media", PROJECT_DIR / "var")


def _tree_state() -> tuple[str, frozenset[tuple[str, int]]]:
    """What `git status` says of the tree, and every file in the shop's folders with its mtime."""
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    files = frozenset(
        (str(path.relative_to(PROJECT_DIR)), path.stat().st_mtime_ns)
        for folder in SHOP_FOLDERS
        for path in folder.rglob("*")
        if path.is_file()
    )
    return status, files


@pytest.fixture(scope="session", autouse=True)
def tree_left_as_found(request) -> Iterator[None]:
    """Fail the run (an error at the last test's teardown) if a test wrote into the project:
    tests write only to temporary folders, so `make test` leaves the checkout as it was.

    A run asked to write screenshots into the tree (`make screenshots`) is not checked.
    """
    if request.config.getoption("--screenshots") is not None:
        yield
        return
    status_before, files_before = _tree_state()
    yield
    status_after, files_after = _tree_state()
    assert status_after == status_before, (
        f"the tests changed the tracked tree (git status before:\n{status_before}after:\n"
        f"{status_after}); a test must write to tmp_path"
    )
    assert files_after == files_before, (
        f"the tests wrote into media/ or var/: {sorted(files_after - files_before)}"
    )


@pytest.fixture(autouse=True)
def private_media(settings, tmp_path) -> None:
    """Give every test its own media folder: invoices, credit notes, images and thumbnails
    a test makes never land in the demo shop's `media/`."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def screenshot_dir(request, tmp_path) -> Path:
    """Where a browser test saves its screenshot: `--screenshots=DIR`, else its tmp_path."""
    chosen = request.config.getoption("--screenshots")
    if chosen is None:
        return tmp_path
    folder = Path(chosen).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(autouse=True)
def eager_tasks(settings) -> Iterator[None]:
    """Run tasks in-process unless a test starts a real worker (see `celery_worker`)."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def broker_not_paused() -> Iterator[None]:
    """A publish failure pauses publishing in this process; no test inherits another's pause."""
    outbox_services._resume_broker()
    yield
    outbox_services._resume_broker()


@pytest.fixture(autouse=True)
def live_reads_release_the_database() -> Iterator[None]:
    """Live's publisher reads availability on a thread of its own in a process without
    sockets (Redis layer): its connection is closed after each test, or the run's database
    could not be dropped."""
    yield
    publisher.release_database()


@pytest.fixture(autouse=True)
def no_webhook_endpoints_remembered() -> None:
    """Tell this process's copy of the webhook subscriptions that there are none, as every
    test starts: an endpoint of an earlier, rolled-back test is not remembered, and query
    budgets do not pay for loading the copy."""
    from webhooks.selectors import subscriptions_forget

    subscriptions_forget(known={})


@pytest.fixture
def run_concurrently() -> Callable[..., list[Any]]:
    """Run `target(index)` in `count` real threads started together; return results or errors.

    Each thread gets its own database connection (Django's connections are per thread) and
    closes it when done, so a test sees real lock contention on PostgreSQL.
    """

    def run(target: Callable[[int], Any], count: int, timeout: float = 60) -> list[Any]:
        barrier = threading.Barrier(count)
        results: list[Any] = [None] * count

        def worker(index: int) -> None:
            try:
                barrier.wait()
                results[index] = target(index)
            except BaseException as error:  # the test inspects what each thread met
                results[index] = error
            finally:
                connections.close_all()

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout)
        assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
        return results

    return run


@pytest.fixture
def smtp_server() -> Iterator[Any]:
    """A real SMTP server on 127.0.0.1 that keeps what it receives and can be made to hang."""
    from tests.smtp_server import SmtpServer

    server = SmtpServer()
    yield server
    server.close()


def _database_url_for_children() -> str:
    db = connection.settings_dict
    return (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )


@pytest.fixture
def child_process_env(tmp_path) -> dict[str, str]:
    """Environment for a process that must share this test's database and Redis."""
    return child_env(tmp_path)


def child_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a process sharing the test database and Redis, writing under `tmp_path`
    (the `child_process_env` fixture's, for fixtures of a wider scope)."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=_database_url_for_children(),
        REDIS_URL=settings.REDIS_URL,
        CELERY_TASK_DEFAULT_QUEUE=f"test-{uuid.uuid4().hex[:12]}",
        # django-environ drops the path's first slash; a fourth keeps the folder absolute.
        EMAIL_URL=f"filemail:///{tmp_path / 'mail'}",
        MEDIA_ROOT=str(tmp_path / "media"),
        DEBUG="True",
    )
    return env


def celery_worker_command(*, queue: str, hostname: str, pool: str = "solo") -> list[str]:
    """Return the command line of a test's own Celery worker: one process, one queue.

    No chatter with other workers on the broker (gossip, mingle, heartbeat), so it starts in a
    second.
    """
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        f"--pool={pool}",
        "--concurrency=1",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel=INFO",
        f"--queues={queue}",
        f"--hostname={hostname}",
    ]


@pytest.fixture
def celery_worker(
    transactional_db, child_process_env, settings, tmp_path
) -> Iterator[dict[str, str]]:
    """Start a real Celery worker process on Redis, on a queue of this test's own.

    The test process publishes to the same queue and stops running tasks eagerly. Yields the
    worker's environment (its mail folder is `EMAIL_URL`).
    """
    queue = child_process_env["CELERY_TASK_DEFAULT_QUEUE"]
    # A file, not a pipe nobody reads: a full pipe would stop the worker mid-test.
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(
        celery_worker_command(queue=queue, hostname=f"{queue}@%h"),
        cwd=PROJECT_DIR,
        env=child_process_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    settings.CELERY_TASK_ALWAYS_EAGER = False
    celery_app.conf.task_always_eager = False
    previous_queue = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            # Only this test's worker counts: other workers may share the broker.
            pong = celery_app.control.ping(
                timeout=0.5, destination=[f"{queue}@{socket.gethostname()}"]
            )
            if pong:
                break
            if process.poll() is not None:
                raise RuntimeError(f"worker exited: {(tmp_path / 'worker.log').read_text()}")
        else:
            raise RuntimeError(f"worker not ready: {(tmp_path / 'worker.log').read_text()}")
        # Eager tasks run by several threads at once (concurrency tests) can leave Celery's
        # process-wide "inside a task" flag set (its save and restore are not thread-safe);
        # this process is no worker, and the test may wait for a result.
        with allow_join_result():
            yield child_process_env
    finally:
        celery_app.conf.task_default_queue = previous_queue
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
