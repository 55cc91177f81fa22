"""Every error under /api/ is application/problem+json with a stable code; no traceback leaks."""

import json
import logging

import pytest
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation

from catalog import selectors as catalog_selectors
from orders.models import Order
from tests.storefront_helpers import FAST_HASHERS, client_for, user_with_token

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


def test_unsupported_method_answers_405_problem_with_allow(client):
    # when
    response = client.put("/api/v1/products")

    # then
    assert response.status_code == 405
    assert response["Content-Type"] == "application/problem+json"
    assert response["Allow"] == "GET, HEAD"
    assert response.json()["code"] == "method_not_allowed"


def test_head_where_get_is_not_served_answers_405_with_allow(client):
    # when
    response = client.head("/api/v1/auth/register")

    # then
    assert response.status_code == 405
    assert response["Allow"] == "POST"


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


# Over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB): what a client or proxy may send by mistake.
OVERSIZED_BODY = json.dumps({"email": "ada@example.com", "password": "x" * 3_000_000})


@pytest.mark.parametrize(
    "path", ["/api/v1/auth/register", "/api/v1/auth/token", "/api/v1/payments/webhook"]
)
def test_body_over_the_upload_limit_answers_413_problem(client, path, caplog):
    # when
    response = client.post(
        path,
        data=OVERSIZED_BODY,
        content_type="application/json",
        headers={"Stockwire-Signature": "t=1,v1=00"},
    )

    # then
    assert response.status_code == 413
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert set(body) >= PROBLEM_FIELDS
    assert (body["status"], body["code"]) == (413, "payload_too_large")
    assert not [r for r in caplog.records if r.name == "stockwire.api"]


def test_order_body_over_the_upload_limit_answers_413_and_places_nothing(settings):
    # given
    settings.PASSWORD_HASHERS = FAST_HASHERS
    ada = client_for(user_with_token()[1])
    lines = [{"sku": "X" * 60, "quantity": 1}] * 50_000

    # when
    response = ada.post(
        "/api/v1/orders",
        data=json.dumps({"lines": lines}),
        content_type="application/json",
        headers={"Idempotency-Key": "key-1"},
    )

    # then
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert Order.objects.count() == 0


def test_request_django_deems_suspicious_answers_400_problem(client, monkeypatch):
    # given
    def suspicious():
        raise SuspiciousOperation("suspicious internals")

    monkeypatch.setattr(catalog_selectors, "category_list", suspicious)

    # when
    response = client.get("/api/v1/categories")

    # then
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "bad_request"
    assert "suspicious internals" not in response.content.decode()


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
        ("GET", "/api/v1/"),
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
        ("GET", "/api/v1/products/{slug}/reviews"),
        ("POST", "/api/v1/products/{slug}/reviews"),
        ("PATCH", "/api/v1/reviews/{review_id}"),
        ("DELETE", "/api/v1/reviews/{review_id}"),
        ("POST", "/api/v1/reviews/{review_id}/helpful"),
        ("POST", "/api/v1/staff/orders/{number}/shipments"),
        ("POST", "/api/v1/staff/orders/{number}/cancel-lines"),
        ("POST", "/api/v1/staff/orders/{number}/returns"),
    }
    for item in paths.values():
        for operation in item.values():
            assert {"400", "422", "500"} <= set(operation["responses"])
            if "requestBody" in operation:
                assert "413" in operation["responses"]


def test_interactive_docs_are_served(client):
    assert client.get("/api/v1/docs").status_code == 200
