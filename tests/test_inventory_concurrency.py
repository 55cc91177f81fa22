"""Real threads, each with its own PostgreSQL connection, racing for the same stock rows."""

import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.management import call_command
from django.db import connections, transaction

from inventory.models import StockAllocation, StockLevel
from inventory.selectors import stock_drift
from inventory.services import (
    InvalidStockOperation,
    OutOfStock,
    stock_receive,
    stock_release,
    stock_reserve,
    stock_ship,
)
from tests.inventory_helpers import make_variant, make_warehouse

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

# A retry happens only when another buyer took units between our plan and our update, so
# with 10 units there can be at most 10 such failures before the stock is gone.
MAX_ATTEMPTS = 12


def reserve_like_a_checkout(reference: str, quantities: list[tuple[int, int]]):
    """What order_place does: one transaction per attempt, a retry when the plan went stale."""
    for _ in range(MAX_ATTEMPTS):
        try:
            with transaction.atomic():
                stock_reserve(reference=reference, quantities=quantities)
            return "reserved"
        except OutOfStock as error:
            refusal = error
            if not error.retryable:
                break
    return refusal


def test_fifty_buyers_of_the_last_ten_units_over_two_warehouses_get_exactly_ten(
    run_concurrently,
):
    # given
    variant = make_variant(threshold=0)
    stock_receive(variant=variant, warehouse=make_warehouse("first", 1), quantity=6)
    stock_receive(variant=variant, warehouse=make_warehouse("second", 2), quantity=4)

    # when
    results = run_concurrently(
        lambda index: reserve_like_a_checkout(f"RACE-{index}", [(variant.pk, 1)]), count=50
    )

    # then
    assert results.count("reserved") == 10
    losers = [result for result in results if result != "reserved"]
    assert len(losers) == 40
    assert all(isinstance(result, OutOfStock) for result in losers), losers
    assert all(result.shortages[0].available == 0 for result in losers)
    assert sorted(StockLevel.objects.values_list("on_hand", "reserved")) == [(4, 4), (6, 6)]
    assert StockAllocation.objects.count() == 10
    assert stock_drift() == []
    call_command("inventory_verify")


def test_two_lines_of_one_sku_in_racing_orders_never_oversell(run_concurrently):
    # given
    variant = make_variant(threshold=0)
    stock_receive(variant=variant, warehouse=make_warehouse("main"), quantity=7)

    # when: each order asks 2 + 2 of the same SKU
    results = run_concurrently(
        lambda index: reserve_like_a_checkout(f"PAIR-{index}", [(variant.pk, 2), (variant.pk, 2)]),
        count=10,
    )

    # then
    assert results.count("reserved") == 1
    assert StockLevel.objects.get().reserved == 4
    assert stock_drift() == []


def test_two_hundred_mixed_calls_over_a_few_skus_leave_the_ledger_sound():
    # given: 4 SKUs in 2 warehouses, 60 orders already holding stock; the new orders ask
    # for more than is left, so the last ones are refused
    first, second = make_warehouse("first", 1), make_warehouse("second", 2)
    variants = [make_variant(threshold=0) for _ in range(4)]
    for variant in variants:
        stock_receive(variant=variant, warehouse=first, quantity=60)
        stock_receive(variant=variant, warehouse=second, quantity=60)
    rng = random.Random(8)
    held = []
    for index in range(60):
        reference = f"HELD-{index}"
        stock_reserve(reference=reference, quantities=basket(rng, variants))
        held.append(reference)
    calls = [("reserve", f"NEW-{index}", basket(rng, variants)) for index in range(110)]
    calls += [("release", reference, None) for reference in held[:45]]
    calls += [("ship", reference, None) for reference in held[15:60]]  # 30 race a release
    rng.shuffle(calls)
    assert len(calls) == 200

    def call(operation: str, reference: str, quantities) -> str:
        try:
            if operation == "reserve":
                result = reserve_like_a_checkout(reference, quantities)
                return "reserved" if result == "reserved" else "out of stock"
            if operation == "release":
                stock_release(reference=reference)
                return "released"
            stock_ship(reference=reference)
            return "shipped"
        except InvalidStockOperation:
            return "nothing to ship"  # its release won the race
        finally:
            connections.close_all()

    # when
    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(lambda args: call(*args), calls))

    # then: no exception escaped (a deadlock or constraint error would have), books balance
    assert set(outcomes) <= {"reserved", "out of stock", "released", "shipped", "nothing to ship"}
    assert outcomes.count("reserved") > 0
    assert outcomes.count("out of stock") > 0
    shipped = set(
        StockAllocation.objects.filter(state="shipped").values_list("reference", flat=True)
    )
    assert outcomes.count("shipped") == len(shipped)
    assert outcomes.count("nothing to ship") == 45 - len(shipped & set(held[15:45])) - 15
    assert stock_drift() == []
    call_command("inventory_verify")


def basket(rng: random.Random, variants) -> list[tuple[int, int]]:
    """1 to 3 lines in random order (a checkout does not sort them), quantities 1 to 4."""
    chosen = rng.sample(variants, rng.randint(1, 3))
    return [(variant.pk, rng.randint(1, 4)) for variant in chosen]
