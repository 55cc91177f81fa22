"""Real threads, each with its own PostgreSQL connection, racing for the same stock rows:
`deny` variants with units on hold and safety stock, a back-ordered variant's limit, and
staff changing a policy while a checkout back-orders."""

import datetime
import random
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from django.core.management import call_command
from django.db import connections, transaction
from django.db.models import Sum
from django.utils import timezone

from catalog.models import Variant
from inventory.models import Backorder, PurchaseOrder, StockAllocation, StockLevel, StockPolicy
from inventory.selectors import backorder_drift, stock_drift
from inventory.services import (
    InvalidStockOperation,
    PurchaseUnits,
    purchase_order_create,
    purchase_order_receive,
    reservations,
    stock_hold,
    stock_policy_set,
    stock_receive,
    stock_release,
    stock_reserve,
    stock_safety_set,
    stock_ship,
)
from inventory.signals import stock_changed
from orders.models import Customer, Order, OrderLine
from orders.receivers import allocate_backorders
from orders.services import LineRequest, LinesOutOfStock, order_backorders_allocate, order_place
from tests.inventory_helpers import make_variant, make_warehouse
from tests.locks import held_by_another_transaction
from tests.orders_helpers import ADDRESS, customer_new

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def buyer_placing(customer: Customer) -> Callable[[list[tuple[int, int]]], object]:
    """A checkout of `customer` for (variant id, units): `order_place` with its own retry
    policy. It returns the order, or the `LinesOutOfStock` refusal (answered 409)."""

    def place(quantities: list[tuple[int, int]]) -> Order | LinesOutOfStock:
        skus = dict(
            Variant.objects.filter(pk__in=[pk for pk, _ in quantities]).values_list("pk", "sku")
        )
        try:
            return order_place(
                customer=customer,
                lines=[LineRequest(sku=skus[pk], quantity=units) for pk, units in quantities],
                shipping_address=ADDRESS,
            )
        except LinesOutOfStock as refusal:
            return refusal

    return place


def is_a_true_shortage(refusal: LinesOutOfStock) -> bool:
    """Whether every line the refusal names had fewer units available than it asked for."""
    return all(line["available"] < line["requested"] for line in refusal.lines)


def test_fifty_buyers_of_the_last_ten_units_over_two_warehouses_get_exactly_ten(
    run_concurrently,
):
    # given
    variant = make_variant(threshold=0)
    stock_receive(variant=variant, warehouse=make_warehouse("first", 1), quantity=6)
    stock_receive(variant=variant, warehouse=make_warehouse("second", 2), quantity=4)
    buy = buyer_placing(customer_new())

    # when
    results = run_concurrently(lambda _: buy([(variant.pk, 1)]), count=50)

    # then: every refusal was given when the last unit was gone
    assert sum(isinstance(result, Order) for result in results) == 10
    losers = [result for result in results if not isinstance(result, Order)]
    assert len(losers) == 40
    assert all(isinstance(result, LinesOutOfStock) for result in losers), losers
    assert [line["available"] for result in losers for line in result.lines] == [0] * 40
    assert sorted(StockLevel.objects.values_list("on_hand", "reserved")) == [(4, 4), (6, 6)]
    assert StockAllocation.objects.count() == 10
    assert stock_drift() == []
    call_command("inventory_verify")


def test_units_on_hold_and_safety_stock_are_never_sold_to_fifty_racing_buyers(run_concurrently):
    # given: 16 units on hand, of which 3 damaged and 3 kept as safety stock: 10 to sell
    variant = make_variant(threshold=0)
    first, second = make_warehouse("first", 1), make_warehouse("second", 2)
    stock_receive(variant=variant, warehouse=first, quantity=10)
    stock_receive(variant=variant, warehouse=second, quantity=6)
    stock_hold(variant=variant, warehouse=first, quantity=3, reason="damaged", note="crushed")
    stock_safety_set(variant=variant, warehouse=first, quantity=2)
    stock_safety_set(variant=variant, warehouse=second, quantity=1)
    buy = buyer_placing(customer_new())

    # when
    results = run_concurrently(lambda _: buy([(variant.pk, 1)]), count=50)

    # then: exactly the 10 free units sold, every refusal saw none left
    assert sum(isinstance(result, Order) for result in results) == 10
    refusals = [result for result in results if not isinstance(result, Order)]
    assert all(isinstance(result, LinesOutOfStock) for result in refusals), refusals
    assert [line["available"] for result in refusals for line in result.lines] == [0] * 40
    assert sorted(
        StockLevel.objects.values_list("on_hand", "reserved", "unavailable", "safety_stock")
    ) == [(6, 5, 0, 1), (10, 5, 3, 2)]
    assert stock_drift() == []
    call_command("inventory_verify")


def test_racing_buyers_of_a_backordered_variant_never_wait_beyond_its_limit(run_concurrently):
    # given: 3 units on hand, and up to 5 more may be back-ordered
    variant = make_variant(threshold=0)
    stock_receive(variant=variant, warehouse=make_warehouse("main"), quantity=3)
    StockPolicy.objects.create(variant=variant, policy="backorder", limit=5)
    buy = buyer_placing(customer_new())

    # when
    results = run_concurrently(lambda _: buy([(variant.pk, 1)]), count=30)

    # then: 3 reserved + 5 waiting; every refusal was given with no room left
    orders = [result for result in results if isinstance(result, Order)]
    refusals = [result for result in results if not isinstance(result, Order)]
    assert all(isinstance(result, LinesOutOfStock) for result in refusals), refusals
    assert (len(orders), len(refusals)) == (8, 22)
    assert all(is_a_true_shortage(refusal) for refusal in refusals)
    assert StockLevel.objects.values_list("on_hand", "reserved").get() == (3, 3)
    assert StockPolicy.objects.get(variant=variant).backordered == 5
    assert (
        OrderLine.objects.filter(variant=variant).aggregate(total=Sum("backordered_quantity"))[
            "total"
        ]
        == 5
    )
    assert Backorder.objects.count() == 5
    assert stock_drift() == [] and backorder_drift() == []
    call_command("inventory_verify")


def test_under_multi_warehouse_contention_every_refusal_is_a_true_shortage(run_concurrently):
    # given: 12 units spread 3 a warehouse over 4 warehouses; 30 buyers of 2 units each, so
    # most plans made without locks go stale before their update
    variant = make_variant(threshold=0)
    for priority in range(4):
        warehouse = make_warehouse(f"w{priority}", priority)
        stock_receive(variant=variant, warehouse=warehouse, quantity=3)
    buy = buyer_placing(customer_new())

    # when
    results = run_concurrently(lambda _: buy([(variant.pk, 2)]), count=30)

    # then: 6 orders take the 12 units; each of the 24 refusals (409) saw fewer than 2 left
    orders = [result for result in results if isinstance(result, Order)]
    refusals = [result for result in results if not isinstance(result, Order)]
    assert all(isinstance(result, LinesOutOfStock) for result in refusals), refusals
    assert [refusal.lines for refusal in refusals if not is_a_true_shortage(refusal)] == []
    assert (len(orders), len(refusals)) == (6, 24)
    assert sum(StockLevel.objects.values_list("reserved", flat=True)) == 12
    assert stock_drift() == []


def test_two_lines_of_one_sku_in_racing_orders_never_oversell(run_concurrently):
    # given
    variant = make_variant(threshold=0)
    stock_receive(variant=variant, warehouse=make_warehouse("main"), quantity=7)

    buy = buyer_placing(customer_new())

    # when: each order asks 2 + 2 of the same SKU
    results = run_concurrently(lambda _: buy([(variant.pk, 2), (variant.pk, 2)]), count=10)

    # then
    assert sum(isinstance(result, Order) for result in results) == 1
    assert all(is_a_true_shortage(result) for result in results if not isinstance(result, Order))
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
    buy = buyer_placing(customer_new())
    calls += [("release", reference, None) for reference in held[:45]]
    calls += [("ship", reference, None) for reference in held[15:60]]  # 30 race a release
    rng.shuffle(calls)
    assert len(calls) == 200

    def call(operation: str, reference: str, quantities) -> str:
        try:
            if operation == "reserve":
                result = buy(quantities)
                if isinstance(result, Order):
                    return "reserved"
                return "out of stock" if is_a_true_shortage(result) else "refused with stock"
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

    # then: no refusal while the stock was there, no exception escaped (a deadlock or
    # constraint error would have), and the books balance
    assert outcomes.count("refused with stock") == 0
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


def test_two_clerks_receiving_one_delivery_at_once_count_it_once(run_concurrently):
    # given: 6 units on a purchase order
    variant = make_variant(threshold=0)
    purchase_order = purchase_order_create(
        number="PO-RACE",
        supplier="Potteries Ltd",
        warehouse=make_warehouse("main"),
        expected_on=datetime.date(2027, 6, 1),
        lines=[PurchaseUnits(variant.pk, 6)],
    )

    # when: two clerks receive all of it at the same moment
    def receive(_: int) -> str:
        purchase_order_receive(purchase_order=PurchaseOrder.objects.get(pk=purchase_order.pk))
        return "received"

    results = run_concurrently(receive, 2)

    # then: the second found nothing left to receive; 6 units on hand, not 12
    assert sorted(map(str, results)) == [
        "purchase order PO-RACE is received",
        "received",
    ]
    assert StockLevel.objects.values_list("on_hand", "incoming").get() == (6, 0)
    assert stock_drift() == []


def committed_by_another_connection(change: Callable[[], object], run_concurrently) -> None:
    """Run `change` in a thread of its own: its own connection, committed when it returns."""
    (outcome,) = run_concurrently(lambda _: change(), count=1)
    assert not isinstance(outcome, BaseException), outcome


@pytest.mark.parametrize(
    "change",
    ["switched to deny", "release date reached", "limit set below the order's wait"],
)
def test_a_policy_changed_between_the_plan_and_the_update_refuses_the_backorder(
    change, monkeypatch, run_concurrently
):
    # given: 1 mug on hand; it sells beyond that (a pre-order until tomorrow, or back-orders
    # without a limit), and a buyer wants 3
    today = timezone.localdate()
    variant = make_variant(threshold=0)
    stock_receive(variant=variant, warehouse=make_warehouse("main"), quantity=1)
    if change == "release date reached":
        stock_policy_set(
            variant=variant,
            policy="preorder",
            limit=10,
            release_date=today + datetime.timedelta(days=1),
        )
    else:
        stock_policy_set(variant=variant, policy="backorder")
    staff_change = {
        "switched to deny": lambda: stock_policy_set(variant=variant, policy="deny"),
        "release date reached": lambda: stock_policy_set(
            variant=variant, policy="preorder", limit=10, release_date=today
        ),
        "limit set below the order's wait": lambda: stock_policy_set(
            variant=variant, policy="backorder", limit=1
        ),
    }[change]
    # staff commit their change after the checkout planned, before its policy UPDATE
    record = reservations._backorders_record
    changed = []

    def staff_change_then_record(**kwargs):
        if not changed:
            committed_by_another_connection(staff_change, run_concurrently)
            changed.append(True)
        return record(**kwargs)

    monkeypatch.setattr(reservations, "_backorders_record", staff_change_then_record)

    # when
    result = buyer_placing(customer_new())([(variant.pk, 3)])

    # then: refused (never a 500, never units waiting that the policy no longer allows), and
    # the refusal is the retry's, planned under locks with the new policy
    assert changed == [True]
    assert isinstance(result, LinesOutOfStock), result
    assert is_a_true_shortage(result)
    assert not Backorder.objects.exists()
    assert StockPolicy.objects.get(pk=variant.pk).backordered == 0
    assert StockLevel.objects.values_list("on_hand", "reserved").get() == (1, 0)
    assert not Order.objects.exists()


def test_two_clerks_placing_one_purchase_order_number_at_once_get_one_order_and_a_refusal(
    run_concurrently,
):
    # given
    variant = make_variant(threshold=0)
    main = make_warehouse("main")

    # when: six clerks type the same number at once
    results = run_concurrently(
        lambda _: purchase_order_create(
            number="PO-9",
            supplier="Potteries Ltd",
            warehouse=main,
            expected_on=datetime.date(2027, 5, 1),
            lines=[PurchaseUnits(variant.pk, 3)],
        ),
        count=6,
    )

    # then: one purchase order; every other clerk is told it exists (never an IntegrityError)
    assert sum(isinstance(result, PurchaseOrder) for result in results) == 1
    refusals = [result for result in results if not isinstance(result, PurchaseOrder)]
    assert [str(refusal) for refusal in refusals] == ["purchase order PO-9 exists already"] * 5
    assert StockLevel.objects.get(variant=variant).incoming == 3


@contextmanager
def no_allocation_after_commit() -> Iterator[None]:
    """Units freed in the block stay free: the allocation after the commit does not run (as
    when it failed), so a test can start it when it likes."""
    stock_changed.disconnect(dispatch_uid="orders.allocate_backorders")
    try:
        yield
    finally:
        stock_changed.connect(allocate_backorders, dispatch_uid="orders.allocate_backorders")


def waiting_order(variant, units: int) -> Order:
    order = buyer_placing(customer_new())([(variant.pk, units)])
    assert isinstance(order, Order), order
    return order


def backordered_units(order: Order) -> int:
    return OrderLine.objects.get(order=order).backordered_quantity


@pytest.mark.parametrize("round_", range(3))
def test_the_allocation_racing_a_new_checkout_serves_the_waiting_order_first(
    round_, run_concurrently
):
    # given: order A waits for 2 mugs; 2 mugs came in, not yet allocated
    variant = make_variant(threshold=0)
    main = make_warehouse("main")
    stock_policy_set(variant=variant, policy="backorder")
    first = waiting_order(variant, 2)
    with no_allocation_after_commit():
        stock_receive(variant=variant, warehouse=main, quantity=2)

    # when: the allocation and a new checkout for 2 run at once
    allocated, second = run_concurrently(
        lambda index: (
            order_backorders_allocate(variant_ids=[variant.pk])
            if index == 0
            else buyer_placing(customer_new())([(variant.pk, 2)])
        ),
        count=2,
    )

    # then: whichever ran first, A has the 2 mugs and the new order waits for its 2
    assert not isinstance(allocated, BaseException), allocated
    assert isinstance(second, Order), second
    assert backordered_units(first) == 0
    assert backordered_units(second) == 2
    assert StockAllocation.objects.values_list("reference", "quantity").get() == (
        first.number,
        2,
    )
    assert stock_drift() == [] and backorder_drift() == []


def test_two_allocations_at_once_give_each_free_unit_once_the_oldest_order_first(
    run_concurrently,
):
    # given: A waits for 2 mugs, then B for 2; 3 mugs came in, not yet allocated
    variant = make_variant(threshold=0)
    main = make_warehouse("main")
    stock_policy_set(variant=variant, policy="backorder")
    first, second = waiting_order(variant, 2), waiting_order(variant, 2)
    with no_allocation_after_commit():
        stock_receive(variant=variant, warehouse=main, quantity=3)

    # when: two workers allocate at once
    results = run_concurrently(
        lambda _: order_backorders_allocate(variant_ids=[variant.pk]), count=2
    )

    # then: A is complete, B has 1 of 2, no unit given twice
    assert not any(isinstance(result, BaseException) for result in results), results
    assert [backordered_units(first), backordered_units(second)] == [0, 1]
    assert StockLevel.objects.values_list("on_hand", "reserved").get() == (3, 3)
    assert StockPolicy.objects.get(pk=variant.pk).backordered == 1
    assert stock_drift() == [] and backorder_drift() == []


def test_a_receipt_whose_allocation_fails_after_its_commit_answers_and_the_rest_runs():
    # given: an order waiting for 2 mugs, whose row another transaction holds (a shipment or a
    # refund of it in progress), and this connection waiting at most 300 ms for any lock
    variant = make_variant(threshold=0)
    main = make_warehouse("main")
    stock_policy_set(variant=variant, policy="backorder")
    first = waiting_order(variant, 2)
    later_work = []

    def receipt() -> None:
        stock_receive(variant=variant, warehouse=main, quantity=5)
        transaction.on_commit(lambda: later_work.append("ran"))

    # when: stock comes in, and its allocation after the commit meets the lock
    def order_being_shipped() -> None:
        Order.objects.select_for_update().get(pk=first.pk)

    with held_by_another_transaction(order_being_shipped), transaction.atomic():
        receipt()

    # then: the receipt stands and raised nothing (the failure is logged), the transaction's
    # later work ran, and the minute's sweep serves the order
    assert StockLevel.objects.get(variant=variant).on_hand == 5
    assert later_work == ["ran"]
    assert backordered_units(first) == 2
    order_backorders_allocate(variant_ids=[variant.pk])
    assert backordered_units(first) == 0
