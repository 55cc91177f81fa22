"""The OpenAPI document says what a generated client needs to type its answers: enums, money
as decimal strings, the headers sent, the real bounds of parameters, readable operation ids and
which operations are for staff."""

import pytest

from orders.models import OrderStatus
from tests.storefront_helpers import client_for, order_post, user_with_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client) -> dict:
    return client.get("/api/v1/openapi.json").json()


def operations(schema: dict) -> dict[str, dict]:
    return {
        operation["operationId"]: operation
        for item in schema["paths"].values()
        for operation in item.values()
    }


def test_operation_ids_are_the_views_names(schema):
    assert sorted(operations(schema)) == [
        "api_index",
        "category_list",
        "lines_cancel",
        "login",
        "logout",
        "order_cancel",
        "order_detail",
        "order_invoice",
        "order_invoice_document",
        "order_list",
        "order_place",
        "order_ship",
        "payment_webhook",
        "product_detail",
        "product_list",
        "product_reviews",
        "register",
        "return_refund",
        "review_create",
        "review_helpful",
        "review_remove",
        "review_update",
        "shipment_create",
    ]


def test_order_status_is_an_enum_and_money_a_two_place_decimal_string(schema):
    # given
    components = schema["components"]["schemas"]
    order = components["OrderOut"]["properties"]

    # then
    assert order["status"]["$ref"] == "#/components/schemas/OrderStatus"
    assert components["OrderStatus"]["enum"] == list(OrderStatus.values)
    for money in (
        order["subtotal"],
        order["shipping"],
        order["total"],
        components["OrderLineOut"]["properties"]["unit_price"],
        components["VariantOut"]["properties"]["price"],
        components["InvoiceOut"]["properties"]["total"],
    ):
        assert (money["type"], money["format"], money["pattern"]) == (
            "string",
            "decimal",
            r"^\d+\.\d{2}$",
        )


def test_headers_sent_are_declared(schema):
    # given
    by_id = operations(schema)

    # then
    assert set(by_id["product_detail"]["responses"]["200"]["headers"]) == {"ETag", "X-Request-ID"}
    assert set(by_id["product_detail"]["responses"]["304"]["headers"]) == {"ETag", "X-Request-ID"}
    assert set(by_id["order_place"]["responses"]["201"]["headers"]) == {
        "Idempotent-Replayed",
        "X-Request-ID",
    }
    assert set(by_id["login"]["responses"]["429"]["headers"]) == {"Retry-After", "X-Request-ID"}
    for operation in by_id.values():
        assert set(operation["responses"]["503"]["headers"]) == {"Retry-After", "X-Request-ID"}
        assert all(
            "X-Request-ID" in answer["headers"] for answer in operation["responses"].values()
        )


def test_the_fields_problems_carry_are_declared(schema):
    # given: an order naming a SKU the catalog does not have
    _, token = user_with_token(email="ada@example.com")
    refused = order_post(client_for(token), lines=[{"sku": "NOPE-1", "quantity": 1}])
    by_id = operations(schema)
    schemas = schema["components"]["schemas"]

    # then: its `skus` is in the 422's schema, and a 500's `request_id` in the 500's
    assert refused.status_code == 422 and refused.json()["skus"] == ["NOPE-1"]
    unprocessable = by_id["order_place"]["responses"]["422"]["content"]
    assert unprocessable["application/problem+json"]["schema"]["$ref"].endswith(
        "/ValidationProblem"
    )
    assert "skus" in schemas["ValidationProblem"]["properties"]
    for operation in by_id.values():
        server_error = operation["responses"]["500"]["content"]["application/problem+json"]
        assert server_error["schema"]["$ref"] == "#/components/schemas/ServerProblem"
    assert "request_id" in schemas["ServerProblem"]["required"]


def test_lists_state_their_real_page_size_and_answer_pages(schema):
    # given
    by_id = operations(schema)

    # then
    for name in ("product_list", "order_list"):
        (limit,) = [p for p in by_id[name]["parameters"] if p["name"] == "limit"]
        assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 100)
    page = by_id["order_list"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert page == {"$ref": "#/components/schemas/OrderPageOut"}
    assert set(schema["components"]["schemas"]["OrderPageOut"]["properties"]) == {"count", "items"}


def test_staff_operations_are_tagged_described_and_secured_as_staff(schema):
    # given
    by_id = operations(schema)
    staff = {name for name, operation in by_id.items() if "staff" in operation["tags"]}

    # then
    assert staff == {"order_ship", "shipment_create", "lines_cancel", "return_refund"}
    for name in staff:
        assert by_id[name]["description"].startswith("**Staff only**: needs a staff user's token")
        assert by_id[name]["security"] == [{"StaffTokenAuth": []}]
    assert schema["components"]["securitySchemes"]["StaffTokenAuth"]["description"] == (
        "A staff user's token from POST /auth/token; a customer's answers 403."
    )
