"""The API's front door: where its documents and main resources are, as links to follow."""

from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from ninja import Router

from storefront.api.schemas import ApiIndexOut

router = Router(tags=["index"])

# Operations linked from the index, by the name a client reads (their URL names in the API).
LINKS = {
    "categories": "category_list",
    "products": "product_list",
    "auth_register": "register",
    "auth_token": "login",
    "orders": "order_list",
}


@router.get("/", response={200: ApiIndexOut}, url_name="api_index", summary="API index")
def api_index(request: HttpRequest):
    """Links to the documents (interactive docs, OpenAPI) and the main resources."""

    def link(name: str) -> str:
        return request.build_absolute_uri(reverse(f"api-v1:{name}"))

    return JsonResponse(
        {
            "docs": link("openapi-view"),
            "openapi": link("openapi-json"),
            "links": {key: link(name) for key, name in LINKS.items()},
        }
    )
