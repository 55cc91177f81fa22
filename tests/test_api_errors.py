"""Every error under /api/ is application/problem+json with a stable code; no traceback leaks."""

import json
import logging

import pytest
from django.core.cache import cache

from catalog import selectors as catalog_selectors

pytestmark = pytest.mark.django_db

PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()


def test_unknown_path_under_the_api_answers_404_problem(client):
    # when
    response = client.get("/api/v1/no/such/thing")

    # then
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert set(body) >= PROBLEM_FIELDS
    assert (body["status"], body["code"]) == (404, "not_found")


def test_api_root_answers_404_problem(client):
    # when
    response = client.get("/api/v1/")

    # then
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_unsupported_method_answers_405_problem_with_allow(client):
    # when
    response = client.put("/api/v1/products")

    # then
    assert response.status_code == 405
    assert response["Content-Type"] == "application/problem+json"
    assert response["Allow"] == "GET"
    assert response.json()["code"] == "method_not_allowed"


def test_body_that_is_not_json_answers_400_problem(client):
    # when
    response = client.post("/api/v1/auth/token", data="{not json", content_type="application/json")

    # then
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"


def test_validation_problem_lists_each_failing_field(client):
    # when
    response = client.post(
        "/api/v1/auth/register",
        data=json.dumps({"email": "", "password": "x" * 500}),
        content_type="application/json",
    )

    # then
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert sorted(error["field"] for error in body["errors"]) == ["email", "password"]


def test_nul_characters_answer_422_not_a_database_error(client):
    # when
    response = client.get("/api/v1/products", {"q": "shirt\x00"})

    # then
    assert response.status_code == 422


def test_unexpected_error_answers_500_problem_without_traceback_and_logs_the_request_id(
    client, monkeypatch, caplog
):
    # given
    def broken():
        raise RuntimeError("secret internals")

    monkeypatch.setattr(catalog_selectors, "category_list", broken)

    # when
    response = client.get("/api/v1/categories", headers={"X-Request-ID": "req-42"})

    # then
    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["code"], body["request_id"]) == ("server_error", "req-42")
    assert "secret internals" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    [record] = [r for r in caplog.records if r.name == "stockwire.api"]
    assert record.levelno == logging.ERROR
    assert "req-42" in record.getMessage()
    assert record.exc_info[1].args == ("secret internals",)


def test_openapi_document_lists_every_operation_with_its_problems(client):
    # when
    response = client.get("/api/v1/openapi.json")

    # then
    assert response.status_code == 200
    paths = response.json()["paths"]
    operations = {(method.upper(), path) for path, item in paths.items() for method in item}
    assert operations == {
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/token"),
        ("DELETE", "/api/v1/auth/token"),
        ("GET", "/api/v1/categories"),
        ("GET", "/api/v1/products"),
        ("GET", "/api/v1/products/{slug}"),
        ("POST", "/api/v1/orders"),
        ("GET", "/api/v1/orders"),
        ("GET", "/api/v1/orders/{number}"),
        ("POST", "/api/v1/orders/{number}/cancel"),
        ("GET", "/api/v1/orders/{number}/invoice"),
        ("GET", "/api/v1/orders/{number}/invoice/document"),
        ("POST", "/api/v1/payments/webhook"),
        ("POST", "/api/v1/staff/orders/{number}/ship"),
    }
    for item in paths.values():
        for operation in item.values():
            assert {"400", "422", "500"} <= set(operation["responses"])


def test_interactive_docs_are_served(client):
    assert client.get("/api/v1/docs").status_code == 200
