from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"

    def ready(self) -> None:
        from audit.registry import audit_register
        from catalog import receivers  # noqa: F401
        from catalog.models import Category, Product, Variant

        audit_register(Category)
        # The search document is derived from the other fields; its churn is not news.
        audit_register(Product, exclude=("search_document",))
        audit_register(Variant)
