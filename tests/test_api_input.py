"""What the API takes in: bodies declared as JSON, values of the schema's own types, nesting it
can hold, and only the hosts it serves. Everything else is a 4xx problem that changes nothing."""

import json
from dataclasses import dataclass, field

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client

from core.json_input import MAX_DEPTH
from orders.models import Order, OrderStatus
from payments.demo_provider import demo_event, demo_signature
from payments.models import Payment
from storefront.models import ApiToken
from tests.storefront_helpers import (
    ADDRESS,
    FAST_HASHERS,
    client_for,
    order_post,
    product_make,
    signed_webhook,
    staff_with_token,
    user_with_token,
)

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


@pytest.fixture(autouse=True)
def fast_and_fresh(settings):
    settings.PASSWORD_HASHERS = FAST_HASHERS
    cache.clear()


@dataclass
class Shop:
    ada: Client
    staff: Client
    unpaid: str
    paid: str
    anonymous: Client = field(default_factory=Client)


@pytest.fixture
def shop() -> Shop:
    product_make(skus=("SHIRT-M",), price="19.99", on_hand=5)
    ada = client_for(user_with_token(email="ada@example.com")[1])
    staff = client_for(staff_with_token()[1])
    unpaid = order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 1}], key="unpaid").json()
    paid = order_post(ada, lines=[{"sku": "SHIRT-M", "quantity": 1}], key="paid").json()
    payment = demo_event(order_number=paid["number"], amount=paid["total"], currency="EUR")
    assert signed_webhook(ada, payment).status_code == 200
    return Shop(ada=ada, staff=staff, unpaid=unpaid["number"], paid=paid["number"])


def state() -> tuple:
    """What any refused request must leave as it was."""
    return (
        get_user_model().objects.count(),
        ApiToken.objects.count(),
        sorted(Order.objects.values_list("number", "status", "tracking_number")),
        Payment.objects.count(),
    )


def send(shop: Shop, endpoint: str, body: bytes, content_type: str | None = "application/json"):
    """POST `body` to one of the endpoints that read a body, as its usual caller would."""
    client, path, headers = {
        "register": (shop.anonymous, "/api/v1/auth/register", {}),
        "token": (shop.anonymous, "/api/v1/auth/token", {}),
        "orders": (shop.ada, "/api/v1/orders", {"Idempotency-Key": "new-order"}),
        "ship": (shop.staff, f"/api/v1/staff/orders/{shop.paid}/ship", {}),
        "webhook": (
            shop.anonymous,
            "/api/v1/payments/webhook",
            {"Stockwire-Signature": demo_signature(body)},
        ),
    }[endpoint]
    if content_type is None:
        return client.generic("POST", path, body, headers=headers)
    return client.post(path, data=body, content_type=content_type, headers=headers)


def valid_body(shop: Shop, endpoint: str) -> dict:
    return {
        "register": {"email": "new@example.com", "password": "correct horse battery"},
        "token": {"email": "ada@example.com", "password": "correct horse battery"},
        "orders": {"lines": [{"sku": "SHIRT-M", "quantity": 1}], "shipping_address": ADDRESS},
        "ship": {"tracking_number": "TRACK-1"},
        "webhook": demo_event(order_number=shop.unpaid, amount="24.89", currency="EUR"),
    }[endpoint]


ENDPOINTS = ["register", "token", "orders", "ship", "webhook"]
SUCCESS = {"register": 201, "token": 200, "orders": 201, "ship": 200, "webhook": 200}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "text/json", None]
)
def test_a_json_body_not_sent_as_application_json_answers_415_and_changes_nothing(
    shop, endpoint, content_type
):
    # given
    body = json.dumps(valid_body(shop, endpoint)).encode()
    before = state()

    # when
    response = send(shop, endpoint, body, content_type=content_type)

    # then
    assert response.status_code == 415
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == "unsupported_media_type"
    assert state() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_application_json_with_a_charset_is_json(shop, endpoint):
    # when (providers such as Stripe send their events so)
    body = json.dumps(valid_body(shop, endpoint)).encode()
    response = send(shop, endpoint, body, content_type="Application/JSON; charset=utf-8")

    # then
    assert response.status_code == SUCCESS[endpoint]


def test_the_openapi_document_lists_415_wherever_a_body_is_read(client):
    # when
    paths = client.get("/api/v1/openapi.json").json()["paths"]

    # then
    with_a_body = {
        (method.upper(), path)
        for path, item in paths.items()
        for method, operation in item.items()
        if "415" in operation["responses"]
    }
    assert with_a_body == {
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/token"),
        ("POST", "/api/v1/orders"),
        ("POST", "/api/v1/staff/orders/{number}/ship"),
        ("POST", "/api/v1/staff/orders/{number}/shipments"),
        ("POST", "/api/v1/staff/orders/{number}/cancel-lines"),
        ("POST", "/api/v1/staff/orders/{number}/returns"),
        ("POST", "/api/v1/payments/webhook"),
        ("POST", "/api/v1/products/{slug}/reviews"),
        ("PATCH", "/api/v1/reviews/{review_id}"),
    }


@pytest.mark.parametrize(
    ("endpoint", "body", "field_name"),
    [
        ("orders", {"lines": [{"sku": "SHIRT-M", "quantity": "1"}]}, "lines.0.quantity"),
        ("orders", {"lines": [{"sku": "SHIRT-M", "quantity": True}]}, "lines.0.quantity"),
        ("orders", {"lines": [{"sku": "SHIRT-M", "quantity": 1.0}]}, "lines.0.quantity"),
        ("orders", {"lines": [{"sku": 7, "quantity": 1}]}, "lines.0.sku"),
        (
            "orders",
            {"shipping_address": {**ADDRESS, "postal_code": 10115}},
            "shipping_address.postal_code",
        ),
        ("register", {"email": "new@example.com", "password": 1234567890123}, "password"),
        ("token", {"email": ["ada@example.com"], "password": "correct horse battery"}, "email"),
        ("ship", {"tracking_number": 123456}, "tracking_number"),
    ],
)
def test_a_value_of_another_json_type_answers_422_naming_its_field(
    shop, endpoint, body, field_name
):
    # given
    before = state()

    # when
    response = send(shop, endpoint, json.dumps({**valid_body(shop, endpoint), **body}).encode())

    # then
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == [field_name]
    assert state() == before


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("depth", [900, 1_000, 100_000])
def test_a_body_nested_deeper_than_the_stack_answers_400(shop, endpoint, depth):
    # given
    before = state()

    # when: the document itself, then one valid body carrying it in a field of its own
    whole = send(shop, endpoint, nested(depth).encode())
    body = json.dumps(valid_body(shop, endpoint))[:-1] + f', "extra": {nested(depth)}}}'
    inside = send(shop, endpoint, body.encode())

    # then
    assert (whole.status_code, inside.status_code) == (400, 400)
    assert whole["Content-Type"] == inside["Content-Type"] == PROBLEM
    assert state() == before


def chain(containers: int) -> str:
    """A JSON value of `containers` objects, each inside the one before."""
    return '{"a": ' * (containers - 1) + "{}" + "}" * (containers - 1)


def test_a_signed_event_nesting_beyond_the_limit_answers_400_malformed_event(shop):
    # given: the event's own object, and a field nesting up to the limit, or one level more
    event = json.dumps(demo_event(order_number=shop.unpaid, amount="24.89", currency="EUR"))[:-1]
    at_limit = f'{event}, "x": {chain(MAX_DEPTH - 1)}}}'
    beyond = f'{event}, "x": {chain(MAX_DEPTH)}}}'

    # when
    refused = send(shop, "webhook", beyond.encode())
    payments_after_refusal = Payment.objects.count()
    taken = send(shop, "webhook", at_limit.encode())

    # then
    assert refused.status_code == 400
    assert refused.json()["code"] == "malformed_event"
    assert payments_after_refusal == 1
    assert taken.status_code == 200
    assert Order.objects.get(number=shop.unpaid).status == OrderStatus.PAID


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/v1/auth/token"), ("GET", "/api/v1/products"), ("GET", "/api/v1/nowhere")],
)
def test_a_host_outside_allowed_hosts_answers_400_problem_and_reaches_no_view(
    client, method, path, caplog
):
    # given
    user_with_token(email="ada@example.com")
    body = json.dumps({"email": "ada@example.com", "password": "correct horse battery"})

    # when
    response = client.generic(
        method, path, body, content_type="application/json", headers={"Host": "evil.example"}
    )

    # then
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert (response.json()["status"], response.json()["code"]) == (400, "disallowed_host")
    assert ApiToken.objects.count() == 1
    assert [record.name for record in caplog.records if record.name.startswith("django.sec")] == [
        "django.security.DisallowedHost"
    ]


def test_a_host_outside_allowed_hosts_is_still_refused_outside_the_api(client):
    # when
    response = client.get("/admin/login/", headers={"Host": "evil.example"})

    # then: Django's own page, as before
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
