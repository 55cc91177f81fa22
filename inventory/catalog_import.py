"""The catalog import: one CSV row per SKU and warehouse, written with batched bulk statements.

Format (design.md, "Catalog import"): a header row, then
`sku,product,variant,category,price,warehouse,on_hand` and optionally
`low_stock_threshold,description,is_active`. Rows with the same `product` name form one
product; `category` may be a path `Parent > Child`; categories and warehouses are created when
missing; `on_hand` sets the level of that SKU in that warehouse and the difference goes to the
ledger as an `import` movement. An empty optional cell leaves the stored value as it is.

Running the same file twice changes nothing the second time: every write compares with what
is stored first. Bad rows are reported with their line numbers; the good rows are imported.
`bulk_create`/`bulk_update` send no model signals, so each batch records its own audit
entries for the products and variants it created or changed (one INSERT per action, the
changed fields' `[before, after]` as the audit receivers write them), ends by sending
`catalog_changed(product_ids=...)` (search, cache) and, through `stock_set_on_hand`,
`stock_changed(variant_ids=..., product_ids=..., availability_crossed_zero=...)` (design
rule 8); the stock itself goes to the ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.db.models import Min, Model, Q
from django.utils import timezone
from django.utils.text import slugify

from audit.models import AuditAction
from audit.registry import audited_model
from audit.services import Changes, audit_diff, audit_record_many, audit_snapshot
from catalog.models import Category, Product, Variant
from catalog.services import product_search_document
from catalog.signals import catalog_changed
from core.sql import update_rows
from inventory.catalog_csv import Row
from inventory.models import StockLevel, StockMovement, Warehouse
from inventory.services import stock_set_on_hand, warehouse_ensure

# Rows per transaction: large enough that statements, not round trips, dominate; small enough
# that one batch's locks and memory stay modest and progress shows.
BATCH_SIZE = 5000
# Slug lookups of clashing names are OR-ed prefix queries; more per query makes a slow plan.
SLUG_PREFIX_QUERY_SIZE = 200
DEFAULT_THRESHOLD = Variant._meta.get_field("low_stock_threshold").default


@dataclass
class ImportReport:
    rows: int = 0
    products_created: int = 0
    products_updated: int = 0
    variants_created: int = 0
    variants_updated: int = 0
    levels_changed: int = 0
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
    categories = _categories_ensure(
        paths={row.category for row in rows if row.category}, report=report
    )
    warehouses = _warehouses_ensure(codes={row.warehouse for row in rows}, report=report)
    products: dict[str, int] = {}
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        catalog_import_batch(
            batch,
            categories=categories,
            warehouses=warehouses,
            products=products,
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
    much smaller tables and hash-joins whole tables (measured: the checkout's plan query went
    from under 1 ms to 20 ms right after a 100,000-row import).
    """
    if connection.vendor != "postgresql":
        return
    tables = [
        model._meta.db_table
        for model in (Category, Product, Variant, Warehouse, StockLevel, StockMovement)
    ]
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {', '.join(tables)}")


def _categories_ensure(
    *, paths: set[tuple[str, ...]], report: ImportReport
) -> dict[tuple[str, ...], Category]:
    """Return the category of every path, creating the missing nodes (saved one by one:
    categories are few, and their model signals keep the audit trail and caches right)."""
    ids: dict[tuple[str, ...], Category] = {}
    nodes = sorted({path[:depth] for path in paths for depth in range(1, len(path) + 1)}, key=len)
    with transaction.atomic():
        for node in nodes:
            parent_id = ids[node[:-1]].pk if len(node) > 1 else None
            category = Category.objects.filter(parent_id=parent_id, name=node[-1]).first()
            if category is None:
                slug = _unique_slugs(Category, ["-".join(node)])[0]
                category, created = Category.objects.get_or_create(
                    parent_id=parent_id, name=node[-1], defaults={"slug": slug}
                )
                report.categories_created += created
            ids[node] = category
    return ids


def _warehouses_ensure(*, codes: set[str], report: ImportReport) -> dict[str, int]:
    existing = dict(Warehouse.objects.filter(code__in=codes).values_list("code", "pk"))
    for code in sorted(codes - set(existing)):
        existing[code] = warehouse_ensure(code=code, name=code).pk
        report.warehouses_created += 1
    return existing


def _unique_slugs(
    model: type[Product] | type[Category], names: list[str], taken: set[str] | None = None
) -> list[str]:
    """Free slugs for `names`, in order: `base`, else `base-2`, `base-3`, ...

    Set-based: one query for the bases, one prefix query per few hundred bases that clash.
    `taken` collects the slugs handed out, so later calls in one import do not reuse them.
    """
    max_length = model._meta.get_field("slug").max_length - 8
    fallback = model._meta.model_name
    bases = [slugify(name)[:max_length].strip("-") or fallback for name in names]
    taken = taken if taken is not None else set()
    wanted = sorted(set(bases))
    stored = set(model.objects.filter(slug__in=wanted).values_list("slug", flat=True))
    clashing = sorted(base for base in wanted if base in stored or base in taken)
    for start in range(0, len(clashing), SLUG_PREFIX_QUERY_SIZE):
        prefixes = Q()
        for base in clashing[start : start + SLUG_PREFIX_QUERY_SIZE]:
            prefixes |= Q(slug__startswith=f"{base}-")
        stored.update(model.objects.filter(prefixes).values_list("slug", flat=True))
    slugs = []
    for base in bases:
        candidate, number = base, 1
        while candidate in stored or candidate in taken:
            number += 1
            candidate = f"{base}-{number}"
        taken.add(candidate)
        slugs.append(candidate)
    return slugs


@dataclass
class _AuditBatch:
    """A batch's audit entries, recorded together when its writes are done."""

    created: list[tuple[Model, Changes]] = field(default_factory=list)
    updated: list[tuple[Model, Changes]] = field(default_factory=list)

    def create(self, instance: Model, fields: tuple[Any, ...]) -> None:
        snapshot = audit_snapshot(instance=instance, fields=fields)
        self.created.append((instance, {name: [None, value] for name, value in snapshot.items()}))

    def assign(self, instance: Model, values: dict[str, Any], fields: tuple[Any, ...]) -> bool:
        """Set the `values` (by attname) that differ on `instance` and note the change for
        the audit trail; return whether any did."""
        changed = {
            name: value for name, value in values.items() if getattr(instance, name) != value
        }
        if not changed:
            return False
        before = audit_snapshot(instance=instance, fields=fields)
        for name, value in changed.items():
            setattr(instance, name, value)
        after = audit_snapshot(instance=instance, fields=fields)
        self.updated.append((instance, audit_diff(before=before, after=after)))
        return True

    def record(self, *, actor) -> None:
        audit_record_many(action=AuditAction.CREATE, changes_by_object=self.created, actor=actor)
        audit_record_many(action=AuditAction.UPDATE, changes_by_object=self.updated, actor=actor)


def _audited_fields(model: type[Model], names: Iterable[str] | None = None) -> tuple[Any, ...]:
    """The fields of `model` the audit trail records, of those named (default: all).

    An updated row is loaded with the imported columns only: reading another would cost a
    query per row.
    """
    fields = audited_model(model).fields
    if names is None:
        return fields
    wanted = set(names)
    return tuple(audited for audited in fields if audited.name in wanted)


@transaction.atomic
def catalog_import_batch(
    batch: list[Row],
    *,
    categories: dict[tuple[str, ...], Category],
    warehouses: dict[str, int],
    products: dict[str, int],
    report: ImportReport,
    actor,
) -> None:
    """Write one batch in one transaction: products, variants, their audit entries, then
    levels.

    Sends `catalog_changed(product_ids)` for the products created or changed, and (through
    `stock_set_on_hand`) `stock_changed` and `stock_low`.
    """
    first_of_product: dict[str, Row] = {}
    first_of_sku: dict[str, Row] = {}
    for row in batch:
        first_of_product.setdefault(row.product, row)
        first_of_sku.setdefault(row.sku, row)

    skus_of: dict[str, list[str]] = {}
    for sku, row in first_of_sku.items():
        skus_of.setdefault(row.product, []).append(sku)
    audit = _AuditBatch()
    changed_products = _products_write(
        first_of_product, skus_of, categories, products, report, audit
    )
    variant_ids, changed_variant_products = _variants_write(first_of_sku, products, report, audit)
    audit.record(actor=actor)

    targets = {(variant_ids[row.sku], warehouses[row.warehouse]): row.on_hand for row in batch}
    line_of = {(variant_ids[row.sku], warehouses[row.warehouse]): row.line for row in batch}
    result = stock_set_on_hand(targets=targets, actor=actor, note="catalog import")
    report.errors.extend((line_of[problem.key], problem.message) for problem in result.problems)
    report.levels_changed += len(result.changed_level_ids)

    product_ids = sorted(changed_products | changed_variant_products)
    if product_ids:
        catalog_changed.send(sender=catalog_import_batch, product_ids=product_ids)


def _products_write(
    first_of_product: dict[str, Row],
    skus_of: dict[str, list[str]],
    categories: dict[tuple[str, ...], Category],
    products: dict[str, int],
    report: ImportReport,
    audit: _AuditBatch,
) -> set[int]:
    """Update changed products and create new ones; return the ids of both."""
    unknown = [name for name in first_of_product if name not in products]
    if unknown:
        products.update(
            Product.objects.filter(name__in=unknown)
            .values("name")
            .annotate(first=Min("pk"))
            .values_list("name", "first")
        )
    changed: set[int] = set()
    stored = {
        product.pk: product
        for product in Product.objects.filter(
            pk__in=[products[name] for name in first_of_product if name in products]
        ).only("pk", "name", "category_id", "description")
    }
    stale = []
    imported = _audited_fields(Product, ("category", "description"))
    for name, row in first_of_product.items():
        product = stored.get(products.get(name))
        if product is None:
            continue
        wanted: dict[str, Any] = {
            "category_id": categories[row.category].pk if row.category else None
        }
        if row.description is not None:
            wanted["description"] = row.description
        if audit.assign(product, wanted, imported):
            stale.append(product)
    if stale:
        update_rows(Product, stale, ["category", "description", "updated_at"])
        report.products_updated += len(stale)
        changed.update(product.pk for product in stale)

    new_names = [name for name in first_of_product if name not in products]
    if new_names:
        slugs = _unique_slugs(Product, new_names)
        fresh = []
        built = []
        for name, slug in zip(new_names, slugs, strict=True):
            row = first_of_product[name]
            product = Product(
                name=name,
                slug=slug,
                description=row.description or "",
                category=categories.get(row.category),
            )
            fresh.append(
                {
                    "name": name,
                    "slug": slug,
                    "description": product.description,
                    "category_id": product.category_id,
                    # Written with the row, the search document is already right when the
                    # batch's `catalog_changed` refresh compares it: nothing left to rewrite.
                    "search_document": product_search_document(
                        product=product, skus=skus_of.get(name, [])
                    ),
                }
            )
            built.append(product)
        by_slug = _insert_new(Product, fresh, key="slug")
        for row in fresh:
            products[row["name"]] = by_slug[row["slug"]]
        audited = _audited_fields(Product)
        for product in built:
            product.pk = by_slug[product.slug]
            audit.create(product, audited)
        report.products_created += len(fresh)
        changed.update(by_slug.values())
    return changed


def _variants_write(
    first_of_sku: dict[str, Row],
    products: dict[str, int],
    report: ImportReport,
    audit: _AuditBatch,
) -> tuple[dict[str, int], set[int]]:
    """Create new SKUs and update changed ones; return sku → id and the products touched."""
    stored = {
        variant.sku: variant
        for variant in Variant.objects.filter(sku__in=list(first_of_sku)).only(
            "pk", "sku", "product_id", "name", "price", "low_stock_threshold", "is_active"
        )
    }
    touched: set[int] = set()
    stale = []
    fresh = []
    imported = _audited_fields(
        Variant, ("product", "name", "price", "low_stock_threshold", "is_active")
    )
    for sku, row in first_of_sku.items():
        product_id = products[row.product]
        variant = stored.get(sku)
        if variant is None:
            fresh.append(
                {
                    "sku": sku,
                    "product_id": product_id,
                    "name": row.variant,
                    "price": row.price,
                    "low_stock_threshold": (
                        row.low_stock_threshold
                        if row.low_stock_threshold is not None
                        else DEFAULT_THRESHOLD
                    ),
                    "is_active": row.is_active if row.is_active is not None else True,
                }
            )
            continue
        wanted = {
            "product_id": product_id,
            "name": row.variant,
            "price": row.price,
            "low_stock_threshold": row.low_stock_threshold,
            "is_active": row.is_active,
        }
        moved_from = variant.product_id
        if audit.assign(
            variant, {name: value for name, value in wanted.items() if value is not None}, imported
        ):
            touched.add(moved_from)
            stale.append(variant)
    if stale:
        update_rows(
            Variant,
            stale,
            ["product", "name", "price", "low_stock_threshold", "is_active", "updated_at"],
        )
        report.variants_updated += len(stale)
        touched.update(variant.product_id for variant in stale)
    ids = {sku: variant.pk for sku, variant in stored.items()}
    if fresh:
        ids.update(_insert_new(Variant, fresh, key="sku"))
        report.variants_created += len(fresh)
        touched.update(row["product_id"] for row in fresh)
    audited = _audited_fields(Variant)
    for values in fresh:
        audit.create(Variant(pk=ids[values["sku"]], **values), audited)
    return ids, touched


def _insert_new(model: type[Model], rows: list[dict[str, Any]], *, key: str) -> dict[Any, int]:
    """Insert new rows given as {attname: value}; return their ids by the unique `key`.

    On PostgreSQL: one `INSERT ... SELECT ... FROM unnest(...)`, the columns that differ per
    row as one array each, every other column as one parameter holding the model's default
    (timestamps: now). Building a model instance and binding a placeholder per value is most
    of what a 100,000-row import would spend otherwise. Elsewhere: `bulk_create`.
    """
    if connection.vendor != "postgresql":
        created = model.objects.bulk_create([model(**row) for row in rows])
        return {getattr(instance, key): instance.pk for instance in created}
    template = model()
    now = timezone.now()
    varying = list(rows[0])
    columns_of = [column for column in model._meta.concrete_fields if not column.primary_key]
    selected, constants, arrays, names = [], [], [], []
    for column in columns_of:
        if column.attname in varying:
            selected.append(f"v.{column.column}")
            names.append(column.column)
            kind = column.db_type(connection).split("(")[0]
            arrays.append((f"%s::{kind}[]", [row[column.attname] for row in rows]))
            continue
        if getattr(column, "auto_now", False) or getattr(column, "auto_now_add", False):
            value = now
        else:
            value = getattr(template, column.attname)
        selected.append("%s")
        constants.append(column.get_db_prep_save(value, connection))
    table = model._meta.db_table
    key_column = model._meta.get_field(key).column
    sql = (
        f"INSERT INTO {table} ({', '.join(column.column for column in columns_of)}) "
        f"SELECT {', '.join(selected)} FROM unnest({', '.join(cast for cast, _ in arrays)}) "
        f"AS v({', '.join(names)}) RETURNING id, {key_column}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, constants + [values for _, values in arrays])
        return {row_key: pk for pk, row_key in cursor.fetchall()}
