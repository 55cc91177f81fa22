"""The interactive API docs in a real browser with the network off: Swagger UI comes from the
installed packages, never from a CDN, so `/api/v1/docs` works on a machine without internet."""

from storefront.api import api


def test_api_docs_render_offline_and_list_every_operation(page, live_server):
    # given: the network is off; only the live server answers
    refused: list[str] = []

    def only_the_live_server(route) -> None:
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_live_server)
    schema = api.get_openapi_schema(path_prefix="/api/v1")
    operations = sorted(
        (method.upper(), path) for path, item in schema["paths"].items() for method in item
    )

    # when
    page.goto(f"{live_server.url}/api/v1/docs")

    # then
    page.wait_for_selector(".opblock")
    shown = sorted(
        (
            block.locator(".opblock-summary-method").inner_text(),
            block.locator(".opblock-summary-path").get_attribute("data-path"),
        )
        for block in page.locator(".opblock").all()
    )
    assert shown == operations
    assert (
        page.locator(".information-container .title")
        .inner_text()
        .startswith("Stockwire storefront API")
    )
    assert refused == []
