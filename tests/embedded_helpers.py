"""The embedded default as `make run` starts it, for tests that run manage.py in a child process:
none of the services' variables set, a private database and media folder."""

import os
import subprocess
import sys
from pathlib import Path

from conftest import PROJECT_DIR

# The variables that would point a child at this run's PostgreSQL, Redis or broker.
SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "EMAIL_URL", "DEBUG")


def embedded_env(folder: Path, **extra: str) -> dict[str, str]:
    """The environment of `make run`: nothing configured but a private database and media."""
    env = {key: value for key, value in os.environ.items() if key not in SERVICE_VARIABLES}
    env.update(DATABASE_URL=f"sqlite:///{folder / 'db.sqlite3'}", MEDIA_ROOT=str(folder / "media"))
    env.update(extra)
    return env


def manage(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `manage.py *args` in the project folder with `env`; its output is captured."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
