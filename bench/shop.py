"""Load the benchmark shop: a catalog of 10,000 SKUs with large stock and an order history.

`python -m bench.shop` (run by bench.run with the bench database in the environment). The
catalog goes in with `bulk_create`, which sends no model signals, so, like every bulk path in
Stockwire, it fills the search document itself and then sends `catalog_changed`
and `stock_changed` for the whole batch. The history (customers, orders, lines, allocations and a
consistent stock ledger) is written set-based in SQL, then every table is VACUUM ANALYZEd: a shop
that has been live has history, and on empty tables PostgreSQL caches sequential-scan plans for
foreign-key checks and throughput halves every few seconds (see bench/reference/README.md).
"""

import os
import time
from decimal import Decimal

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
django.setup()

from django.apps import apps  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from catalog.models import Category, Product, Variant  # noqa: E402
from catalog.signals import catalog_changed  # noqa: E402
from inventory.models import StockLevel, Warehouse  # noqa: E402
from inventory.signals import stock_changed  # noqa: E402

PRODUCTS = 2_000
VARIANTS_PER_PRODUCT = 5  # 10,000 SKUs
STOCK = 1_000_000_000
HISTORY_ORDERS = int(os.environ.get("BENCH_HISTORY_ORDERS", "50000"))
HISTORY_CUSTOMERS = 5_000
SCARCE_SKU = "BENCH-SCARCE"
SCARCE_UNITS = 10


def sku(number: int) -> str:
    """The SKU of variant `number` (1-based); the hot SKUs are 1..5, one product's variants."""
    return f"BENCH-{number:05d}"


def load_catalog() -> tuple[list[int], list[int]]:
    """Categories, products, variants and stock levels; return (product ids, variant ids)."""
    warehouse = Warehouse.objects.create(code="main", name="Main warehouse", priority=10)
    parents = Category.objects.bulk_create(
        [Category(name=f"Department {d}", slug=f"department-{d}") for d in range(1, 6)]
    )
    leaves = Category.objects.bulk_create(
        [
            Category(name=f"Aisle {d}.{a}", slug=f"aisle-{d}-{a}", parent=parent)
            for d, parent in enumerate(parents, start=1)
            for a in range(1, 5)
        ]
    )
    products = []
    for p in range(1, PRODUCTS + 1):
        category = leaves[p % len(leaves)]
        first = (p - 1) * VARIANTS_PER_PRODUCT + 1
        skus = " ".join(sku(n) for n in range(first, first + VARIANTS_PER_PRODUCT))
        name = f"Bench product {p:04d}"
        description = f"A sturdy bench item number {p} for load testing."
        products.append(
            Product(
                name=name,
                slug=f"bench-product-{p:04d}",
                description=description,
                category=category,
                search_document=f"{name} {description} {category.name} {skus}",
            )
        )
    scarce = Product(
        name="Bench scarce item",
        slug="bench-scarce-item",
        description="Only ten units exist.",
        category=leaves[0],
        search_document=f"Bench scarce item Only ten units exist. {leaves[0].name} {SCARCE_SKU}",
    )
    products = Product.objects.bulk_create([*products, scarce], batch_size=1000)
    variants = [
        Variant(
            product=product,
            sku=sku((p - 1) * VARIANTS_PER_PRODUCT + v),
            name=f"Size {v}",
            price=Decimal("9.99") + Decimal(p % 40),
        )
        for p, product in enumerate(products[:PRODUCTS], start=1)
        for v in range(1, VARIANTS_PER_PRODUCT + 1)
    ]
    variants.append(Variant(product=scarce, sku=SCARCE_SKU, name="One size", price=Decimal("49")))
    variants = Variant.objects.bulk_create(variants, batch_size=2000)
    StockLevel.objects.bulk_create(
        [
            StockLevel(
                variant=variant,
                warehouse=warehouse,
                on_hand=SCARCE_UNITS if variant.sku == SCARCE_SKU else STOCK,
            )
            for variant in variants
        ],
        batch_size=2000,
    )
    return [p.pk for p in products], [v.pk for v in variants]


HISTORY_SQL = """
INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email,
                       is_staff, is_active, date_joined)
SELECT '!', false, 'history-' || g || '@bench.example', '', '', 'history-' || g || '@bench.example',
       false, true, now() - interval '400 days'
FROM generate_series(1, %(customers)s) AS g;

INSERT INTO orders_customer (user_id, order_count, lifetime_value, created_at, updated_at)
SELECT id, 0, 0, date_joined, date_joined FROM auth_user
WHERE username LIKE 'history-%%' AND NOT EXISTS (
    SELECT 1 FROM orders_customer c WHERE c.user_id = auth_user.id);

CREATE TEMP TABLE bench_history AS
SELECT g AS n,
       (SELECT min(id) FROM orders_customer) + (g %% %(customers)s) AS customer_id,
       now() - g * interval '10 minutes' AS placed_at,
       CASE WHEN g %% 20 = 0 THEN 'cancelled' ELSE 'delivered' END AS status
FROM generate_series(1, %(orders)s) AS g;

INSERT INTO orders_order (number, customer_id, status, currency, subtotal, shipping, total,
    shipping_refunded, shipping_address, tracking_number, needs_attention, attention_reason,
    placed_at, paid_at, shipped_at, delivered_at, cancelled_at, refunded_at, updated_at)
SELECT 'H' || lpad(n::text, 9, '0'), customer_id, status, %(currency)s, 29.97, 4.90, 34.87, false,
    '{"name": "History", "line1": "1 Past Road", "city": "Before", "postal_code": "1",
      "country": "DE"}'::jsonb,
    CASE WHEN status = 'delivered' THEN 'TRK' || n ELSE '' END, false, '', placed_at,
    CASE WHEN status = 'delivered' THEN placed_at + interval '5 minutes' END,
    CASE WHEN status = 'delivered' THEN placed_at + interval '1 day' END,
    CASE WHEN status = 'delivered' THEN placed_at + interval '3 days' END,
    CASE WHEN status = 'cancelled' THEN placed_at + interval '30 minutes' END,
    NULL, placed_at
FROM bench_history ORDER BY n DESC;

CREATE TEMP TABLE bench_history_lines AS
SELECT o.id AS order_id, o.number, o.status, o.placed_at, v.id AS variant_id, v.sku, v.price,
       l.id AS level_id, 1 + ((h.n + k) %% 3) AS quantity
FROM bench_history h
JOIN orders_order o ON o.number = 'H' || lpad(h.n::text, 9, '0')
CROSS JOIN generate_series(0, 2) AS k
JOIN catalog_variant v
  ON v.sku = 'BENCH-' || lpad((1 + ((h.n * 3 + k) * 7919) %% 10000)::text, 5, '0')
JOIN inventory_stocklevel l ON l.variant_id = v.id;

INSERT INTO orders_orderline (order_id, variant_id, sku, name, quantity, unit_price, line_total,
                              shipped_quantity, cancelled_quantity, returned_quantity)
SELECT order_id, variant_id, sku, sku, quantity, price, price * quantity,
       CASE WHEN status = 'delivered' THEN quantity ELSE 0 END,
       CASE WHEN status = 'cancelled' THEN quantity ELSE 0 END, 0
FROM bench_history_lines ORDER BY order_id;

UPDATE orders_order o SET subtotal = s.subtotal, total = s.subtotal + o.shipping
FROM (SELECT order_id, sum(line_total) AS subtotal FROM orders_orderline GROUP BY order_id) s
WHERE s.order_id = o.id AND o.number LIKE 'H%%';

INSERT INTO inventory_stockallocation (reference, level_id, quantity, state, shipped, released,
                                       returned, created_at, updated_at)
SELECT number, level_id, sum(quantity),
       CASE WHEN status = 'delivered' THEN 'shipped' ELSE 'released' END,
       CASE WHEN status = 'delivered' THEN sum(quantity) ELSE 0 END,
       CASE WHEN status = 'delivered' THEN 0 ELSE sum(quantity) END, 0, min(placed_at),
       min(placed_at)
FROM bench_history_lines GROUP BY number, level_id, status;

INSERT INTO inventory_stockmovement (level_id, on_hand_delta, reserved_delta, reason, reference,
                                     actor_id, note, created_at)
SELECT level_id, 0, quantity, 'reservation', number, NULL::integer, '', placed_at
FROM bench_history_lines
UNION ALL
SELECT level_id, CASE WHEN status = 'delivered' THEN -quantity ELSE 0 END, -quantity,
       CASE WHEN status = 'delivered' THEN 'shipment' ELSE 'release' END, number, NULL::integer, '',
       placed_at + interval '1 day'
FROM bench_history_lines;

-- The opening stock: whatever makes each level's ledger add up to its on_hand today.
INSERT INTO inventory_stockmovement (level_id, on_hand_delta, reserved_delta, reason, reference,
                                     actor_id, note, created_at)
SELECT l.id, l.on_hand - coalesce(sum(m.on_hand_delta), 0), 0, 'import', 'bench-opening', NULL,
       'opening stock', now() - interval '1000 days'
FROM inventory_stocklevel l LEFT JOIN inventory_stockmovement m ON m.level_id = l.id
GROUP BY l.id, l.on_hand;

UPDATE orders_customer c SET order_count = s.orders, lifetime_value = s.value
FROM (SELECT customer_id, count(*) AS orders, sum(total) AS value FROM orders_order
      WHERE status = 'delivered' GROUP BY customer_id) s
WHERE s.customer_id = c.id;

INSERT INTO orders_variantsales (variant_id, units_sold, units_shipped)
SELECT variant_id, sum(quantity), sum(quantity) FILTER (WHERE status = 'delivered')
FROM bench_history_lines WHERE status = 'delivered' GROUP BY variant_id;

INSERT INTO orders_dailysales (date, orders, units, revenue)
SELECT placed_at::date, count(DISTINCT order_id), sum(quantity), sum(price * quantity)
FROM bench_history_lines WHERE status = 'delivered' GROUP BY placed_at::date;

DROP TABLE bench_history_lines;
DROP TABLE bench_history;
"""


def load_history() -> None:
    """Customers, orders, lines, allocations and ledger rows, written set-based."""
    from django.conf import settings

    params = {
        "customers": HISTORY_CUSTOMERS,
        "orders": HISTORY_ORDERS,
        "currency": settings.SHOP_CURRENCY,
    }
    # One statement per execute: with prepared statements on (DB_PREPARED_STATEMENTS), psycopg
    # binds server-side, and PostgreSQL takes one command per statement that has parameters.
    with connection.cursor() as cursor:
        for statement in HISTORY_SQL.split(";\n"):
            if statement.strip():
                cursor.execute(statement, params)


def vacuum_analyze() -> None:
    """VACUUM ANALYZE every table, so the planner sees a live shop, not an empty one (the
    reference's unmanaged tables live in their own database)."""
    tables = [model._meta.db_table for model in apps.get_models() if model._meta.managed]
    connection.ensure_connection()
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f'VACUUM (ANALYZE) "{table}"')
        cursor.execute("CHECKPOINT")


def main() -> None:
    started = time.perf_counter()
    with transaction.atomic():
        product_ids, variant_ids = load_catalog()
        # Bulk paths announce their batch: caches, search and audit follow.
        catalog_changed.send(sender=None, product_ids=product_ids)
        stock_changed.send(
            sender=None,
            variant_ids=variant_ids,
            product_ids=product_ids,
            availability_crossed_zero=True,  # every level came from nothing
            availability_grew=True,
        )
    catalog_s = time.perf_counter() - started
    with transaction.atomic():
        load_history()
    history_s = time.perf_counter() - started - catalog_s
    vacuum_analyze()
    print(
        f"shop loaded: {len(variant_ids)} SKUs in {catalog_s:.1f} s, {HISTORY_ORDERS} past orders"
        f" in {history_s:.1f} s, VACUUM ANALYZE done after {time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
