"""Where a newcomer lands: `/` links to the API docs, the admin and the probes; `/api/v1/` is
the API's index of links, as JSON."""

import re

import pytest

pytestmark = pytest.mark.django_db


def test_landing_page_links_to_the_api_docs_the_admin_and_the_health_probe(client):
    # when
    response = client.get("/")

    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    links = re.findall(r'href="([^"]+)"', response.content.decode())
    assert links == [
        "/api/v1/docs",
        "/api/v1/openapi.json",
        "/api/v1/",
        "/admin/",
        "/healthz",
        "/readyz",
    ]
    assert [client.get(link).status_code for link in links] == [200, 200, 200, 302, 200, 200]


def test_api_index_links_the_documents_and_the_main_resources(client):
    # when
    response = client.get("/api/v1/")

    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "docs": "http://testserver/api/v1/docs",
        "openapi": "http://testserver/api/v1/openapi.json",
        "links": {
            "categories": "http://testserver/api/v1/categories",
            "products": "http://testserver/api/v1/products",
            "auth_register": "http://testserver/api/v1/auth/register",
            "auth_token": "http://testserver/api/v1/auth/token",
            "orders": "http://testserver/api/v1/orders",
        },
    }
