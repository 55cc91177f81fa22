from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import migrations

INDEX_NAME = "catalog_product_search_gin"


def _index() -> GinIndex:
    # Must stay the expression of catalog.selectors.product_search_vector(), or PostgreSQL
    # cannot use the index for product searches (tests/test_catalog_search.py checks the plan).
    return GinIndex(SearchVector("search_document", config="english"), name=INDEX_NAME)


def create_search_index(apps, schema_editor) -> None:
    """Index products for full-text search; only PostgreSQL has GIN (SQLite scans instead)."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.add_index(apps.get_model("catalog", "Product"), _index())


def drop_search_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.remove_index(apps.get_model("catalog", "Product"), _index())


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(create_search_index, drop_search_index),
    ]
