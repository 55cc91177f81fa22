"""DATABASE_REPLICA_URLS as start-up reads it: aliases the test runner mirrors, clear refusals."""

import json
import os
import subprocess
import sys

from conftest import PROJECT_DIR

DESCRIBE = """
import json
import django
django.setup()
from django.conf import settings
from django.db import connections
from django.test.utils import get_unique_databases_and_mirrors
created, mirrored = get_unique_databases_and_mirrors()
print(json.dumps({
    "replicas": settings.DATABASE_REPLICAS,
    "routers": settings.DATABASE_ROUTERS,
    "servers": [
        [alias, db["HOST"], db["PORT"], db["NAME"], db["OPTIONS"]["connect_timeout"]]
        for alias, db in settings.DATABASES.items() if alias != "default"
    ],
    "created_for_tests": sorted(alias for _, aliases in created.values() for alias in aliases),
    "mirrored": mirrored,
}))
"""


def _start(**env_overrides: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DATABASE_")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", **env_overrides)
    return subprocess.run(
        [sys.executable, "-c", DESCRIBE],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_each_replica_url_is_an_alias_whose_test_database_is_the_primarys():
    # when: two replicas are configured
    started = _start(
        DATABASE_URL="postgres://shop:pw@db:5432/shop",
        DATABASE_REPLICA_URLS=(
            "postgres://shop:pw@replica-a:5432/shop,"
            "postgres://shop:pw@replica-b:6432/shop?connect_timeout=5"
        ),
    )

    # then: each is an alias with a short connect timeout, the router is installed, and the
    # test runner creates the primary's test database only, which the replicas mirror
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout) == {
        "replicas": ["replica_1", "replica_2"],
        "routers": ["core.replicas.ReplicaRouter"],
        "servers": [
            ["replica_1", "replica-a", 5432, "shop", 2],
            ["replica_2", "replica-b", 6432, "shop", 5],
        ],
        "created_for_tests": ["default"],
        "mirrored": {"replica_1": "default", "replica_2": "default"},
    }


def test_without_replica_urls_nothing_is_routed():
    started = _start(DATABASE_URL="postgres://shop:pw@db:5432/shop")

    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["replicas"] == []
    assert json.loads(started.stdout)["routers"] == []


def test_a_malformed_replica_url_or_a_replica_of_sqlite_stops_start_up_saying_why():
    # when
    malformed = _start(
        DATABASE_URL="postgres://shop:pw@db:5432/shop",
        DATABASE_REPLICA_URLS="postgres://shop:s3cret@replica-a:no-port/shop",
    )
    beside_sqlite = _start(DATABASE_REPLICA_URLS="postgres://shop:s3cret@replica-a:5432/shop")

    # then: each names the problem, and neither shows the password
    assert malformed.returncode != 0
    assert "DATABASE_REPLICA_URLS holds a malformed postgres:// URL" in malformed.stderr
    assert beside_sqlite.returncode != 0
    assert (
        "DATABASE_REPLICA_URLS names PostgreSQL streaming replicas of a PostgreSQL DATABASE_URL;"
        " got a postgres:// replica of a sqlite3 database"
    ) in beside_sqlite.stderr
    assert "s3cret" not in malformed.stderr + beside_sqlite.stderr
