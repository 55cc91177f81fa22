"""The storefront HTTP API v1: one NinjaAPI with a router per area."""

from ninja import NinjaAPI

api = NinjaAPI(title="Stockwire storefront API", version="1", urls_namespace="api-v1")
