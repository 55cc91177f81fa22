"""The service's own plumbing: probes, start-up configuration, request ids, DB session limits."""

import logging
import os
import re
import subprocess
import sys

import pytest
from django.core.cache import cache
from django.db import connection

from config.logging import RequestIdFilter
from conftest import PROJECT_DIR


def _run_django(env_overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DATABASE_URL"}}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_healthz_answers_without_touching_dependencies(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_every_component_ok(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["components"]) == {"database", "cache", "broker"}
    assert body["outbox"] == {
        "pending": 0,
        "oldest_pending_age_seconds": None,
        "in_progress": 0,
        "overdue": 0,
    }


@pytest.mark.django_db
def test_readyz_names_the_cache_when_redis_is_unreachable(client, settings):
    # given a Redis cache on a port where nothing listens
    settings.CACHES = {
        "default": {
            "BACKEND": "core.cache.SharedClientRedisCache",
            "LOCATION": "redis://127.0.0.1:1/1",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }

    # when
    response = client.get("/readyz")

    # then
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["cache"]
    assert body["components"]["database"] == "ok"
    assert body["components"]["cache"].startswith("unavailable")


def test_production_start_without_secret_key_names_it():
    result = _run_django({"DEBUG": "False", "PAYMENT_WEBHOOK_SECRET": "whsec_x" * 8}, "check")

    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_production_start_without_webhook_secret_names_it():
    result = _run_django({"DEBUG": "False", "SECRET_KEY": "k" * 60}, "check")

    assert result.returncode != 0
    assert "PAYMENT_WEBHOOK_SECRET must be set when DEBUG is off" in result.stderr


def test_malformed_database_url_stops_start_up_with_a_clear_message():
    result = _run_django({"DATABASE_URL": "mysqlx://nobody@/"}, "check")

    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr


def test_a_trusted_proxy_network_that_is_none_stops_start_up_naming_it():
    result = _run_django({"TRUSTED_PROXY_NETWORKS": "10.0.0.0/8,10.0.0.300"}, "check")

    assert result.returncode != 0
    assert "TRUSTED_PROXY_NETWORKS holds '10.0.0.300'" in result.stderr


def test_deploy_check_is_clean_with_the_example_production_values():
    production = {}
    section = False
    for line in (PROJECT_DIR / ".env.example").read_text().splitlines():
        if line.startswith("# --- production"):
            section = True
            continue
        if section and line and not line.startswith("#"):
            name, _, value = line.partition("=")
            production[name] = value
    production["DATABASE_URL"] = "sqlite:////tmp/stockwire-deploy-check.sqlite3"

    result = _run_django(production, "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_every_setting_read_from_the_environment_is_documented_and_in_the_example():
    # given the names config/settings.py reads (env.str("NAME", …), env.int(…), …)
    source = (PROJECT_DIR / "config" / "settings.py").read_text()
    read = set(re.findall(r'env\.[a-z]+\("([A-Z][A-Z0-9_]*)"', source)) | {"DATABASE_URL"}
    readme = (PROJECT_DIR / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    example = (PROJECT_DIR / ".env.example").read_text()

    # then an operator finds each in the README's table and in .env.example
    assert len(read) > 20
    assert sorted(name for name in read if f"`{name}`" not in table) == []
    assert sorted(name for name in read if not re.search(rf"^#? ?{name}=", example, re.M)) == []


def test_each_email_url_the_readme_shows_is_documented_and_plain_smtp_reaches_a_local_relay(
    smtp_server,
):
    # given: the README's EMAIL_URL examples
    readme = (PROJECT_DIR / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `EMAIL_URL` |"))
    examples = re.findall(r"`([a-z+]+://[^`]*)`", row)

    # when: plain SMTP to a relay on this host sends the test e-mail
    result = _run_django(
        {"EMAIL_URL": smtp_server.url, "EMAIL_TIMEOUT": "5", "DATABASE_URL": "sqlite://:memory:"},
        "sendtestemail",
        "ops@example.com",
    )

    # then
    assert [url.split("://")[0] for url in examples] == [
        "smtp",
        "smtp+tls",
        "smtp+ssl",
        "filemail",
        "consolemail",
    ]
    assert result.returncode == 0, result.stderr
    assert smtp_server.wait_for_messages(1, timeout=10)
    assert smtp_server.messages[0]["To"] == "ops@example.com"


@pytest.mark.django_db
def test_every_log_line_of_a_request_carries_its_request_id(client, settings):
    # given a handler that sees what the console handler sees, and a request whose readiness
    # check fails, so the request logs a warning as well as its access line
    settings.CACHES = {
        "default": {
            "BACKEND": "core.cache.SharedClientRedisCache",
            "LOCATION": "redis://127.0.0.1:1/1",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    handler.addFilter(RequestIdFilter())
    logging.getLogger().addHandler(handler)
    try:
        # when
        response = client.get("/readyz", HTTP_X_REQUEST_ID="req-abc-123")
    finally:
        logging.getLogger().removeHandler(handler)

    # then
    assert response["X-Request-ID"] == "req-abc-123"
    assert len(records) >= 2
    assert {record.request_id for record in records} == {"req-abc-123"}
    assert any(record.getMessage() == "GET /readyz 503" for record in records)


def test_a_request_without_an_id_gets_a_generated_one(client):
    first = client.get("/healthz")["X-Request-ID"]
    second = client.get("/healthz")["X-Request-ID"]

    assert len(first) == 32
    assert first != second


def test_an_unsafe_request_id_is_replaced(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\r\nSet-Cookie: x")

    assert response["X-Request-ID"] != "bad id\r\nSet-Cookie: x"
    assert len(response["X-Request-ID"]) == 32


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_sessions_get_statement_and_lock_timeouts(settings):
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        lock_timeout = cursor.fetchone()[0]
        cursor.execute("SHOW statement_timeout")
        statement_timeout = cursor.fetchone()[0]

    assert lock_timeout == "5s"
    assert statement_timeout == "15s"


@pytest.mark.redis
def test_the_redis_cache_builds_one_client_and_serves_every_operation_with_it():
    # given the configured Redis cache
    backend = cache._cache

    # when values go in and out through several operations
    cache.set("foundation:one", {"a": 1}, 30)
    cache.set_many({"foundation:two": 2, "foundation:three": 3}, 30)
    found = cache.get_many(["foundation:one", "foundation:two", "foundation:three"])

    # then Redis answered them all, through the one client built for its pool
    assert found == {"foundation:one": {"a": 1}, "foundation:two": 2, "foundation:three": 3}
    assert backend.get_client(write=True) is backend.get_client(write=False)
    assert len(backend._clients) == 1
    cache.delete_many(["foundation:one", "foundation:two", "foundation:three"])


@pytest.mark.worker
def test_a_real_worker_runs_a_task_and_returns_its_result(celery_worker):
    from config.tasks import ping

    result = ping.delay()

    assert result.get(timeout=30) == "pong"
