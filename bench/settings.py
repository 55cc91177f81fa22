"""Settings of the benchmark's servers: production's own, plus what only the bench needs.

Everything comes from `config.settings` (so the server is the one production runs); this module
only points at `bench.urls` (production's URLs plus two bare views for the framework ceiling) and
lets a case swap one thing through the environment:

- `BENCH_CACHE=dummy`: a cache that never hits, for the uncached catalog cases;
- `BENCH_DB_POOL=1`: psycopg's connection pool instead of persistent connections, to measure the
  choice `config/settings.py` makes (needs `psycopg_pool` importable).

The `reference` database (`sw_bench_ref`, or `<BENCH_DB_PREFIX>_ref`, where pgbench runs the
raw-SQL reference) and the `bench` app's unmanaged models of its tables serve the naive ORM
checkout (`bench.urls`).
"""

import copy
import os

from config.settings import *  # noqa: F403
from config.settings import DATABASES, INSTALLED_APPS

ROOT_URLCONF = "bench.urls"
INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
DATABASES["reference"] = {
    **copy.deepcopy(DATABASES["default"]),
    "NAME": os.environ.get("BENCH_DB_PREFIX", "sw_bench") + "_ref",
}

if os.environ.get("BENCH_CACHE") == "dummy":
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}

if os.environ.get("BENCH_DB_POOL") == "1":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": 2}
