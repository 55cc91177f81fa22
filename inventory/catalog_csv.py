"""The catalog import's file: CSV records read and checked into rows, bad ones reported by line.

A header row, then `sku,product,variant,category,price,warehouse,on_hand` and optionally
`low_stock_threshold,description,is_active,policy,policy_limit,release_date`. `category` may be
a path `Parent > Child`. An empty optional cell leaves the stored value as it is (`None` in the
row), except that the three policy cells are one setting: a `policy` (any case) sets the SKU's
stock policy with the limit and release date beside it (empty: none), and the other two need
one.
"""

from __future__ import annotations

import csv
import datetime
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path

from catalog.models import Category, Product, Variant
from inventory.models import InventoryPolicy, Warehouse
from inventory.services import MAX_UNITS, InvalidStockOperation, stock_policy_check

REQUIRED_COLUMNS = ("sku", "product", "variant", "category", "price", "warehouse", "on_hand")
OPTIONAL_COLUMNS = (
    "low_stock_threshold",
    "description",
    "is_active",
    "policy",
    "policy_limit",
    "release_date",
)
TRUE_WORDS = {"1", "true", "yes", "y", "t"}
FALSE_WORDS = {"0", "false", "no", "n", "f"}
WAREHOUSE_CODE = re.compile(r"^[-a-zA-Z0-9_]+$")
ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)
MAX_PRICE = Decimal("99999999.99")
CENTS = Decimal("0.01")
# Column limits, read once: looking them up per row is a measurable part of a large import.
SKU_MAX = Variant._meta.get_field("sku").max_length
PRODUCT_NAME_MAX = Product._meta.get_field("name").max_length
VARIANT_NAME_MAX = Variant._meta.get_field("name").max_length
CATEGORY_NAME_MAX = Category._meta.get_field("name").max_length
WAREHOUSE_CODE_MAX = Warehouse._meta.get_field("code").max_length


class ImportFileError(ValueError):
    """The file cannot be imported at all (unreadable, or a header without required columns)."""

    code = "import_file_invalid"


@dataclass(slots=True)
class Row:
    line: int
    sku: str
    product: str
    variant: str
    category: tuple[str, ...]
    price: Decimal
    warehouse: str
    on_hand: int
    low_stock_threshold: int | None
    description: str | None
    is_active: bool | None
    policy: str | None
    policy_limit: int | None
    release_date: datetime.date | None


def catalog_csv_read(*, path: str | Path) -> tuple[list[Row], list[tuple[int, str]]]:
    """Read and validate a catalog CSV file; return the good rows and (line, message) errors."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return parse_rows(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise ImportFileError(f"cannot read {path}: {error}") from error


def parse_rows(lines: Iterable[list[str]]) -> tuple[list[Row], list[tuple[int, str]]]:
    """Validate CSV records (header first); return the good rows and (line, message) errors.

    Also refused: a second row for the same SKU and warehouse, and a row whose SKU or product
    says something else than the first row that named it.
    """
    records = _numbered(iter(lines))
    _, header = next(records, (1, None))
    if header is None:
        raise ImportFileError("the file is empty; it needs a header row")
    columns = [name.strip().lower() for name in header]
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    unknown = [name for name in columns if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    # A column named twice would let its later cell win unseen.
    twice = sorted({name for name in columns if columns.count(name) > 1})
    if missing or unknown or twice:
        raise ImportFileError(
            "bad header: "
            + "; ".join(
                part
                for part in (
                    f"missing {', '.join(missing)}" if missing else "",
                    f"unknown {', '.join(unknown)}" if unknown else "",
                    f"named twice {', '.join(twice)}" if twice else "",
                )
                if part
            )
        )
    rows: list[Row] = []
    errors: list[tuple[int, str]] = []
    first_of_level: dict[tuple[str, str], int] = {}
    first_of_sku: dict[str, Row] = {}
    first_of_product: dict[str, Row] = {}
    # The first row giving its product a description: any row of the product may give it.
    first_described: dict[str, Row] = {}
    for line, record in records:
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(columns):
            errors.append((line, f"expected {len(columns)} fields, found {len(record)}"))
            continue
        try:
            row = _row(line, dict(zip(columns, record, strict=True)))
        except ValueError as error:
            errors.append((line, str(error)))
            continue
        clash = _clash(row, first_of_level, first_of_sku, first_of_product, first_described)
        if clash:
            errors.append((line, clash))
            continue
        first_of_level[(row.sku, row.warehouse)] = line
        first_of_sku.setdefault(row.sku, row)
        first_of_product.setdefault(row.product, row)
        if row.description is not None:
            first_described.setdefault(row.product, row)
        rows.append(row)
    return rows, errors


def _numbered(records: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    """Pair each record with the line of the file it starts on, the header's being 1.

    A csv reader counts the lines it has read, and a quoted cell may span several: a record
    starts on the line after the one its predecessor ended on. A record the reader cannot
    read (a cell beyond its field size limit) ends the file with an ImportFileError saying
    where. Records built in code (no `line_num`) take one line each.
    """
    if not hasattr(records, "line_num"):
        yield from enumerate(records, start=1)
        return
    ended = records.line_num
    try:
        for record in records:
            yield ended + 1, record
            ended = records.line_num
    except csv.Error as error:
        raise ImportFileError(f"cannot read line {ended + 1}: {error}") from error


def _clash(
    row: Row,
    first_of_level: dict[tuple[str, str], int],
    first_of_sku: dict[str, Row],
    first_of_product: dict[str, Row],
    first_described: dict[str, Row],
) -> str:
    if (row.sku, row.warehouse) in first_of_level:
        return (
            f"SKU {row.sku} in warehouse {row.warehouse} already given on line "
            f"{first_of_level[(row.sku, row.warehouse)]}"
        )
    same_sku = first_of_sku.get(row.sku)
    if same_sku is not None:
        for name in (
            "product",
            "variant",
            "price",
            "low_stock_threshold",
            "is_active",
            "policy",
            "policy_limit",
            "release_date",
        ):
            if getattr(row, name) != getattr(same_sku, name):
                return f"SKU {row.sku}: {name} differs from line {same_sku.line}"
    same_product = first_of_product.get(row.product)
    if same_product is not None and row.category != same_product.category:
        return f"product {row.product!r}: category differs from line {same_product.line}"
    described = first_described.get(row.product)
    if described is not None and row.description not in (None, described.description):
        return f"product {row.product!r}: description differs from line {described.line}"
    return ""


def _text(cells: dict[str, str], name: str, max_length: int, required: bool) -> str:
    value = cells.get(name, "").strip()
    if required and not value:
        raise ValueError(f"{name} is required")
    if len(value) > max_length:
        raise ValueError(f"{name} is longer than {max_length} characters")
    return value


@lru_cache(maxsize=4096)
def _category_path(cell: str) -> tuple[str, ...]:
    """`Parent > Child` as a tuple of names (cached: a file repeats few categories)."""
    category = tuple(part.strip() for part in cell.split(">")) if cell else ()
    if any(not part for part in category):
        raise ValueError(f"category path {cell!r} has an empty part")
    if any(len(part) > CATEGORY_NAME_MAX for part in category):
        raise ValueError("a category name is too long")
    return category


@lru_cache(maxsize=256)
def _warehouse_code(cell: str) -> str:
    if not cell:
        raise ValueError("warehouse is required")
    if len(cell) > WAREHOUSE_CODE_MAX or not WAREHOUSE_CODE.match(cell):
        raise ValueError(
            f"warehouse code {cell!r} may hold only letters, digits, - and _ "
            f"(at most {WAREHOUSE_CODE_MAX})"
        )
    return cell


def _row(line: int, cells: dict[str, str]) -> Row:
    for name, cell in cells.items():
        # PostgreSQL text cannot hold NUL: stored, it would fail the whole batch.
        if "\x00" in cell:
            raise ValueError(f"{name} holds a NUL character")
    threshold_cell = cells.get("low_stock_threshold", "").strip()
    policy, policy_limit, release_date = _policy(cells)
    return Row(
        line=line,
        sku=_text(cells, "sku", SKU_MAX, True),
        product=_text(cells, "product", PRODUCT_NAME_MAX, True),
        variant=_text(cells, "variant", VARIANT_NAME_MAX, False),
        category=_category_path(cells.get("category", "").strip()),
        price=_price(cells.get("price", "").strip()),
        warehouse=_warehouse_code(cells.get("warehouse", "").strip()),
        on_hand=_whole_number("on_hand", cells.get("on_hand", "")),
        low_stock_threshold=(
            _whole_number("low_stock_threshold", threshold_cell) if threshold_cell else None
        ),
        description=cells.get("description", "").strip() or None,
        is_active=_flag(cells.get("is_active", "")),
        policy=policy,
        policy_limit=policy_limit,
        release_date=release_date,
    )


def _policy(cells: dict[str, str]) -> tuple[str | None, int | None, datetime.date | None]:
    """The policy cells as (policy, limit, release date), checked as every policy is
    (`stock_policy_check`); all None when the row sets no policy."""
    policy = cells.get("policy", "").strip().lower()
    limit_cell = cells.get("policy_limit", "").strip()
    date_cell = cells.get("release_date", "").strip()
    if not policy:
        if limit_cell or date_cell:
            raise ValueError("policy_limit and release_date need a policy")
        return None, None, None
    if policy == InventoryPolicy.DENY and (limit_cell or date_cell):
        raise ValueError("deny takes no policy_limit or release_date")
    if policy == InventoryPolicy.BACKORDER and date_cell:
        raise ValueError("a release_date is for preorder only")
    limit = _whole_number("policy_limit", limit_cell) if limit_cell else None
    release_date = _date("release_date", date_cell) if date_cell else None
    try:
        stock_policy_check(policy=policy, limit=limit, release_date=release_date)
    except InvalidStockOperation as error:
        raise ValueError(str(error)) from None
    return policy, limit, release_date


@lru_cache(maxsize=4096)
def _price(cell: str) -> Decimal:
    """The price in a cell, validated (cached: a file repeats few prices)."""
    try:
        price = Decimal(cell.strip())
    except InvalidOperation:
        raise ValueError(f"price {cell.strip()!r} is not a number") from None
    if not price.is_finite() or price <= 0:
        raise ValueError(f"price must be greater than 0, got {cell.strip()!r}")
    if price.as_tuple().exponent < -2:
        raise ValueError(f"price {cell.strip()!r} has more than 2 decimal places")
    if price > MAX_PRICE:
        raise ValueError(f"price {cell.strip()!r} is too large")
    return price.quantize(CENTS)


def _whole_number(name: str, cell: str) -> int:
    """A count in a cell: ASCII digits only (`isdigit` alone takes "²"), within the column."""
    value = cell.strip()
    if not (value.isascii() and value.isdigit()):
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    digits = value.lstrip("0") or "0"
    # The length first: int() refuses a cell of more than 4,300 digits.
    if len(digits) > len(str(MAX_UNITS)) or int(digits) > MAX_UNITS:
        raise ValueError(f"{name} must be at most {MAX_UNITS}")
    return int(digits)


def _date(name: str, cell: str) -> datetime.date:
    """A day written YYYY-MM-DD (`fromisoformat` alone also takes 20270301 and week dates)."""
    try:
        if not ISO_DAY.match(cell):
            raise ValueError
        return datetime.date.fromisoformat(cell)
    except ValueError:
        raise ValueError(f"{name} must be a date like 2027-03-31, got {cell!r}") from None


def _flag(cell: str) -> bool | None:
    value = cell.strip().lower()
    if not value:
        return None
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ValueError(f"is_active must be true or false, got {cell.strip()!r}")


def iter_csv_lines(
    rows: Iterable[dict[str, object]], columns: Iterable[str]
) -> Iterator[list[str]]:
    """Turn dictionaries into CSV records (header first), for callers that build rows in code."""
    names = list(columns)
    yield names
    for row in rows:
        yield ["" if row.get(name) is None else str(row[name]) for name in names]
