"""The demo catalog: nested categories, 50 products with variants, two warehouses, stock (a few
SKUs below their low-stock threshold), a back-order policy, loaded through the catalog import."""

from decimal import Decimal

from django.core.management.base import CommandError

from catalog.models import Variant
from inventory.catalog_csv import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, iter_csv_lines, parse_rows
from inventory.catalog_import import catalog_import_rows
from inventory.services import warehouse_ensure

WAREHOUSES = (("main", "Main warehouse", 10), ("east", "East depot", 20))
SKU_PREFIX = "DEMO-"

# (category path, product, description, base price, variants, stock per warehouse)
PRODUCTS = (
    (
        "Kitchen > Coffee",
        "Pour-over kettle",
        "Gooseneck kettle for a steady pour.",
        "39.00",
        ["0.8 l", "1.2 l"],
        (14, 6),
    ),
    (
        "Kitchen > Coffee",
        "Ceramic dripper",
        "Single-cup dripper, fits size 02 filters.",
        "18.50",
        ["White", "Black"],
        (30, 12),
    ),
    ("Kitchen > Coffee", "Burr grinder", "Hand grinder with steel burrs.", "64.00", [""], (8, 4)),
    (
        "Kitchen > Coffee",
        "Paper filters",
        "100 unbleached filters.",
        "5.90",
        ["Size 01", "Size 02"],
        (120, 60),
    ),
    (
        "Kitchen > Coffee",
        "Espresso cups",
        "Set of two double-walled glasses.",
        "22.00",
        [""],
        (25, 10),
    ),
    ("Kitchen > Coffee", "Coffee scale", "Scale with timer, 0.1 g steps.", "34.90", [""], (3, 0)),
    (
        "Kitchen > Tea",
        "Cast iron teapot",
        "Enamelled inside, 0.9 l.",
        "48.00",
        ["Black", "Green"],
        (9, 3),
    ),
    ("Kitchen > Tea", "Tea strainer", "Fine mesh, stainless steel.", "7.50", [""], (60, 20)),
    ("Kitchen > Tea", "Matcha whisk", "Bamboo chasen, 100 prongs.", "16.00", [""], (2, 1)),
    (
        "Kitchen > Tea",
        "Glass tea jar",
        "Airtight jar for loose leaf.",
        "12.90",
        ["Small", "Large"],
        (40, 15),
    ),
    ("Kitchen", "Chef's knife", "20 cm, German steel.", "79.00", [""], (12, 5)),
    ("Kitchen", "Cutting board", "End-grain walnut.", "55.00", ["Medium", "Large"], (10, 4)),
    (
        "Kitchen",
        "Linen apron",
        "Washed linen with a pocket.",
        "29.00",
        ["Sand", "Charcoal"],
        (18, 9),
    ),
    ("Kitchen", "Measuring spoons", "Set of five, stainless steel.", "9.90", [""], (45, 15)),
    ("Kitchen", "Salt cellar", "Olive wood with lid.", "14.50", [""], (1, 2)),
    (
        "Clothing > T-shirts",
        "Organic tee",
        "Heavy organic cotton.",
        "24.00",
        ["S", "M", "L", "XL"],
        (20, 10),
    ),
    ("Clothing > T-shirts", "Striped tee", "Breton stripes.", "27.00", ["S", "M", "L"], (12, 6)),
    (
        "Clothing > T-shirts",
        "Pocket tee",
        "Relaxed fit with a chest pocket.",
        "22.00",
        ["M", "L"],
        (16, 8),
    ),
    ("Clothing > T-shirts", "Long-sleeve tee", "Brushed jersey.", "32.00", ["S", "M", "L"], (9, 5)),
    (
        "Clothing > Hoodies",
        "Zip hoodie",
        "Loopback cotton, full zip.",
        "69.00",
        ["S", "M", "L"],
        (7, 4),
    ),
    (
        "Clothing > Hoodies",
        "Pullover hoodie",
        "Brushed fleece inside.",
        "59.00",
        ["M", "L", "XL"],
        (11, 3),
    ),
    (
        "Clothing > Hoodies",
        "Kids hoodie",
        "For ages 4 to 10.",
        "39.00",
        ["116", "128", "140"],
        (6, 6),
    ),
    ("Clothing", "Wool beanie", "Merino, ribbed.", "19.00", ["Grey", "Navy", "Rust"], (25, 10)),
    ("Clothing", "Canvas tote", "Heavy canvas, inside pocket.", "15.00", [""], (80, 30)),
    (
        "Clothing",
        "Rain jacket",
        "Waterproof, packs into its pocket.",
        "119.00",
        ["S", "M", "L"],
        (4, 2),
    ),
    (
        "Clothing",
        "Wool socks",
        "Two pairs, reinforced heel.",
        "16.00",
        ["36-39", "40-43", "44-47"],
        (35, 15),
    ),
    (
        "Home > Lighting",
        "Desk lamp",
        "Adjustable arm, warm LED.",
        "89.00",
        ["Black", "White"],
        (6, 6),
    ),
    ("Home > Lighting", "Paper lantern", "Rice paper shade, 40 cm.", "29.00", [""], (15, 5)),
    (
        "Home > Lighting",
        "Candle set",
        "Three soy candles.",
        "21.00",
        ["Unscented", "Cedar"],
        (28, 12),
    ),
    ("Home > Lighting", "Reading light", "Clip-on, rechargeable.", "26.00", [""], (2, 0)),
    ("Home", "Linen cushion", "Cover with feather insert.", "45.00", ["Sand", "Sage"], (10, 10)),
    ("Home", "Wool throw", "Lambswool, 130 x 180 cm.", "95.00", ["Grey", "Ochre"], (5, 3)),
    ("Home", "Ceramic vase", "Hand-thrown stoneware.", "38.00", ["Small", "Tall"], (9, 4)),
    ("Home", "Plant pot", "With drainage saucer.", "17.00", ["12 cm", "18 cm"], (30, 20)),
    ("Home", "Door mat", "Coir, 40 x 60 cm.", "24.00", [""], (14, 6)),
    ("Home", "Wall clock", "Silent movement, oak frame.", "49.00", [""], (7, 2)),
    (
        "Stationery",
        "Dot grid notebook",
        "A5, 192 pages.",
        "14.00",
        ["Black", "Sage", "Rust"],
        (50, 25),
    ),
    (
        "Stationery",
        "Fountain pen",
        "Steel nib, converter included.",
        "36.00",
        ["Fine", "Medium"],
        (12, 6),
    ),
    ("Stationery", "Ink bottle", "50 ml.", "11.00", ["Blue-black", "Sepia"], (20, 8)),
    ("Stationery", "Pencil set", "Six graphite grades.", "8.50", [""], (40, 20)),
    ("Stationery", "Desk organiser", "Beech wood.", "27.00", [""], (8, 3)),
    ("Stationery", "Weekly planner", "Undated, lay-flat binding.", "18.00", [""], (22, 11)),
    ("Stationery", "Washi tape", "Set of five rolls.", "9.00", [""], (1, 1)),
    ("Outdoor", "Enamel mug", "350 ml, camp-proof.", "13.00", ["White", "Blue"], (33, 17)),
    ("Outdoor", "Steel bottle", "Insulated, 750 ml.", "29.00", ["Silver", "Forest"], (19, 9)),
    ("Outdoor", "Picnic blanket", "Water-resistant backing.", "49.00", [""], (6, 6)),
    ("Outdoor", "Pocket knife", "Folding, ash handle.", "42.00", [""], (3, 1)),
    ("Outdoor", "Headlamp", "Rechargeable, red light mode.", "35.00", [""], (10, 5)),
    ("Outdoor", "Camp stool", "Folds flat, 110 kg load.", "31.00", [""], (4, 4)),
    ("Outdoor", "Sit pad", "Closed-cell foam.", "12.00", [""], (16, 8)),
)


# Stock policies the import sets (policy, limit): the scarce coffee scale may be back-ordered,
# so the demo shows a product a customer can order beyond its stock. The demo's own orders
# leave it alone (they buy only SKUs with plenty of units).
POLICIES = {"Coffee scale": ("backorder", 20)}


def demo_rows() -> list[dict[str, object]]:
    """The demo catalog as import rows: one per SKU and warehouse."""
    rows = []
    for index, (category, name, description, price, variants, stock) in enumerate(PRODUCTS):
        policy, policy_limit = POLICIES.get(name, (None, None))
        for variant_index, variant in enumerate(variants):
            sku = f"{SKU_PREFIX}{index + 1:03d}-{variant_index + 1}"
            for (code, _, _), on_hand in zip(WAREHOUSES, stock, strict=True):
                rows.append(
                    {
                        "sku": sku,
                        "product": name,
                        "variant": variant,
                        "category": category,
                        "price": Decimal(price) + variant_index,
                        "warehouse": code,
                        # Vary the counts a little between variants so the shop looks lived-in.
                        "on_hand": max(0, on_hand - variant_index),
                        "low_stock_threshold": 3,
                        "description": description,
                        "is_active": "true",
                        "policy": policy,
                        "policy_limit": policy_limit,
                    }
                )
    return rows


def seed_catalog() -> str | None:
    """Load the demo catalog; report what changed, or None when it was already in place."""
    for code, name, priority in WAREHOUSES:
        warehouse_ensure(code=code, name=name, priority=priority)
    # Only SKUs not there yet: the import sets stock levels, and the demo's orders have moved
    # the existing ones since.
    existing = set(Variant.objects.filter(sku__startswith=SKU_PREFIX).values_list("sku", flat=True))
    missing = [row for row in demo_rows() if row["sku"] not in existing]
    if not missing:
        return None
    rows, errors = parse_rows(iter_csv_lines(missing, columns=REQUIRED_COLUMNS + OPTIONAL_COLUMNS))
    report = catalog_import_rows(rows=rows, errors=errors)
    if report.errors:
        raise CommandError(f"the demo catalog has bad rows: {report.errors}")
    if not report.changed:
        return None
    return (
        f"catalog: {report.products_created} products and {report.variants_created} SKUs "
        f"created, {report.levels_changed} stock levels set"
    )
