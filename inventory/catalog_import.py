"""The catalog import: one CSV row per SKU and warehouse, written in batches of set-based writes.

Rows with the same `product` name form one product; categories and warehouses are created when
missing; `on_hand` sets the level of that SKU in that warehouse and the difference goes to the
ledger as an `import` movement, and a row's policy cells set the SKU's stock policy
(`inventory.catalog_csv` reads and checks the file). The same
file twice changes nothing the second time: every write compares with what is stored. Bad rows
are reported by line; the good rows are imported. Each batch is one transaction: catalog writes
its products and variants (sending `catalog_changed`), then inventory sets the stock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection, transaction

from catalog.models import Category, Product, Variant
from catalog.services import (
    ProductValues,
    VariantValues,
    category_paths_ensure,
    products_upsert,
)
from inventory.catalog_csv import Row
from inventory.models import StockLevel, StockMovement, Warehouse
from inventory.services import (
    PolicyValues,
    stock_policies_set,
    stock_set_on_hand,
    warehouse_ensure,
)

# Rows per transaction: large enough that statements, not round trips, dominate; small enough
# that one batch's locks and memory stay modest and progress shows.
BATCH_SIZE = 5000


@dataclass
class ImportReport:
    """What an import read, wrote and refused (with the line of each bad row)."""

    rows: int = 0
    products_created: int = 0
    products_updated: int = 0
    variants_created: int = 0
    variants_updated: int = 0
    levels_changed: int = 0
    policies_changed: int = 0
    categories_created: int = 0
    warehouses_created: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(
            (
                self.products_created,
                self.products_updated,
                self.variants_created,
                self.variants_updated,
                self.levels_changed,
                self.policies_changed,
                self.categories_created,
                self.warehouses_created,
            )
        )


def catalog_import_rows(
    *,
    rows: list[Row],
    errors: list[tuple[int, str]] | None = None,
    on_batch: Callable[[int], None] | None = None,
    actor=None,
    batch_size: int = BATCH_SIZE,
) -> ImportReport:
    """Import parsed rows in batches, each batch one transaction; return what changed.

    `on_batch(rows)` is called after each batch with its number of rows (a progress bar).
    """
    report = ImportReport(rows=len(rows), errors=list(errors or []))
    categories, report.categories_created = category_paths_ensure(
        paths={row.category for row in rows if row.category}
    )
    warehouses = _warehouses_ensure(codes={row.warehouse for row in rows}, report=report)
    products: dict[str, int] = {}
    policies_set_for: set[str] = set()
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        catalog_import_batch(
            batch,
            categories=categories,
            warehouses=warehouses,
            products=products,
            policies_set_for=policies_set_for,
            report=report,
            actor=actor,
        )
        if on_batch is not None:
            on_batch(len(batch))
    if report.changed:
        _statistics_refresh()
    report.errors.sort()
    return report


def _statistics_refresh() -> None:
    """ANALYZE the tables a large import grew, so the next queries get the right plans.

    Autovacuum gets there eventually; until then the planner keeps the statistics of the
    much smaller tables and hash-joins whole tables, which slows the checkout's own queries
    (bench/README.md, "Figures behind the code").
    """
    if connection.vendor != "postgresql":
        return
    tables = [
        model._meta.db_table
        for model in (Category, Product, Variant, Warehouse, StockLevel, StockMovement)
    ]
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {', '.join(tables)}")


def _warehouses_ensure(*, codes: set[str], report: ImportReport) -> dict[str, int]:
    existing = dict(Warehouse.objects.filter(code__in=codes).values_list("code", "pk"))
    for code in sorted(codes - set(existing)):
        existing[code] = warehouse_ensure(code=code, name=code).pk
        report.warehouses_created += 1
    return existing


@transaction.atomic
def catalog_import_batch(
    batch: list[Row],
    *,
    categories: dict[tuple[str, ...], Category],
    warehouses: dict[str, int],
    products: dict[str, int],
    policies_set_for: set[str],
    report: ImportReport,
    actor,
) -> None:
    """Write one batch in one transaction: its products and variants, then its levels and the
    stock policies its rows set (those of SKUs not in `policies_set_for`, which it extends).

    Sends, through the services it calls, `catalog_changed` for the products created or
    changed, then `stock_changed` and `stock_low`.
    """
    first_of_product: dict[str, Row] = {}
    first_of_sku: dict[str, Row] = {}
    # Any row of a product may give its description (the reader checked they agree).
    description_of: dict[str, str] = {}
    for row in batch:
        first_of_product.setdefault(row.product, row)
        first_of_sku.setdefault(row.sku, row)
        if row.description is not None:
            description_of.setdefault(row.product, row.description)
    upserted = products_upsert(
        products=[
            ProductValues(
                name=name,
                category=categories.get(row.category),
                description=description_of.get(name),
            )
            for name, row in first_of_product.items()
        ],
        variants=[
            VariantValues(
                sku=sku,
                product=row.product,
                name=row.variant,
                price=row.price,
                low_stock_threshold=row.low_stock_threshold,
                is_active=row.is_active,
            )
            for sku, row in first_of_sku.items()
        ],
        product_ids=products,
        actor=actor,
    )
    report.products_created += upserted.products_created
    report.products_updated += upserted.products_updated
    report.variants_created += upserted.variants_created
    report.variants_updated += upserted.variants_updated

    variant_ids = upserted.variant_ids
    targets = {(variant_ids[row.sku], warehouses[row.warehouse]): row.on_hand for row in batch}
    line_of = {(variant_ids[row.sku], warehouses[row.warehouse]): row.line for row in batch}
    result = stock_set_on_hand(targets=targets, actor=actor, note="catalog import")
    report.errors.extend((line_of[problem.key], problem.message) for problem in result.problems)
    report.levels_changed += len(result.changed_level_ids)
    # Every row of a SKU says the same policy (the reader checks): set it once, in the batch
    # of its first row, so a refusal is reported once.
    policy_rows = {
        variant_ids[sku]: row
        for sku, row in first_of_sku.items()
        if row.policy and sku not in policies_set_for
    }
    policies_set_for.update(row.sku for row in policy_rows.values())
    if policy_rows:
        policies = stock_policies_set(
            policies={
                variant_id: PolicyValues(row.policy, row.policy_limit, row.release_date)
                for variant_id, row in policy_rows.items()
            },
            actor=actor,
        )
        report.errors.extend(
            (policy_rows[problem.variant_id].line, problem.message) for problem in policies.problems
        )
        report.policies_changed += len(policies.changed_variant_ids)
