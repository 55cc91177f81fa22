"""Stock buckets beside on hand and reserved: unavailable, safety stock, incoming (purchase
orders); each move a ledger row with its reason, availability what is left to sell."""

import datetime
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction

from audit.models import AuditEntry
from inventory.models import PurchaseOrderLine, StockLevel, StockMovement, StockPolicy
from inventory.selectors import availability_by_variant, stock_drift, stock_outlook
from inventory.services import (
    InvalidStockOperation,
    OutOfStock,
    PurchaseUnits,
    purchase_order_close,
    purchase_order_create,
    purchase_order_receive,
    stock_adjust,
    stock_hold,
    stock_policy_set,
    stock_receive,
    stock_reserve,
    stock_safety_set,
    stock_unhold,
)
from inventory.signals import stock_changed, stock_low
from tests.inventory_helpers import Recorder, make_variant, make_warehouse

pytestmark = pytest.mark.django_db

JUNE_1 = datetime.date(2027, 6, 1)


def buckets(level: StockLevel) -> tuple[int, int, int, int, int]:
    level.refresh_from_db()
    return (level.on_hand, level.reserved, level.incoming, level.unavailable, level.safety_stock)


def ledger(level: StockLevel) -> list[tuple]:
    return list(
        StockMovement.objects.filter(level=level)
        .order_by("pk")
        .values_list(
            "reason",
            "on_hand_delta",
            "reserved_delta",
            "incoming_delta",
            "unavailable_delta",
            "safety_stock_delta",
        )
    )


def test_held_units_are_not_sold_and_come_back_or_are_written_off_with_a_ledger_row_each():
    # given: 10 on hand, 2 reserved
    variant = make_variant(threshold=0)
    main = make_warehouse("main")
    level = stock_receive(variant=variant, warehouse=main, quantity=10)
    stock_reserve(reference="SW-1", quantities=[(variant.pk, 2)])

    # when: 3 damaged, 2 on quality hold
    stock_hold(variant=variant, warehouse=main, quantity=3, reason="damaged", note="dropped")
    stock_hold(variant=variant, warehouse=main, quantity=2, reason="quality_hold", note="batch 7")

    # then: 3 left to sell; a checkout of 4 is refused with what is available
    assert buckets(level) == (10, 2, 0, 5, 0)
    assert availability_by_variant(variant_ids=[variant.pk]) == {variant.pk: 3}
    with pytest.raises(OutOfStock) as refused:
        stock_reserve(reference="SW-2", quantities=[(variant.pk, 4)])
    assert refused.value.shortages[0].available == 3

    # when: the batch passes its check, 2 damaged are thrown away, 1 comes back
    with Recorder(stock_changed) as changed:
        stock_unhold(variant=variant, warehouse=main, quantity=2, note="batch 7 passed")
    stock_unhold(variant=variant, warehouse=main, quantity=2, note="broken", write_off=True)
    stock_unhold(variant=variant, warehouse=main, quantity=1, note="only scratched")

    # then
    assert buckets(level) == (8, 2, 0, 0, 0)
    assert availability_by_variant(variant_ids=[variant.pk]) == {variant.pk: 6}
    assert changed.calls[0]["availability_grew"] is True
    assert ledger(level)[2:] == [
        ("damaged", 0, 0, 0, 3, 0),
        ("quality_hold", 0, 0, 0, 2, 0),
        ("hold_released", 0, 0, 0, -2, 0),
        ("write_off", -2, 0, 0, -2, 0),
        ("hold_released", 0, 0, 0, -1, 0),
    ]
    assert StockMovement.objects.filter(reason="damaged").get().note == "dropped"
    assert stock_drift() == []


def test_a_hold_takes_only_units_neither_reserved_nor_held_and_needs_a_reason():
    # given: 5 on hand, 4 reserved
    variant = make_variant()
    main = make_warehouse("main")
    level = stock_receive(variant=variant, warehouse=main, quantity=5)
    stock_reserve(reference="SW-1", quantities=[(variant.pk, 4)])

    # when / then: nothing changes
    with pytest.raises(InvalidStockOperation, match="fewer than 2 units neither reserved"):
        stock_hold(variant=variant, warehouse=main, quantity=2, reason="damaged", note="x")
    with pytest.raises(InvalidStockOperation, match="reason"):
        stock_hold(variant=variant, warehouse=main, quantity=1, reason="lost", note="x")
    with pytest.raises(InvalidStockOperation, match="note"):
        stock_hold(variant=variant, warehouse=main, quantity=1, reason="damaged", note=" ")
    with pytest.raises(InvalidStockOperation, match="fewer than 1 units unavailable"):
        stock_unhold(variant=variant, warehouse=main, quantity=1, note="none held")
    # and an adjustment cannot take held units away either
    stock_hold(variant=variant, warehouse=main, quantity=1, reason="damaged", note="cracked")
    with pytest.raises(InvalidStockOperation, match="reserved and unavailable"):
        stock_adjust(variant=variant, warehouse=main, on_hand_delta=-1, note="stocktake")
    assert buckets(level) == (5, 4, 0, 1, 0)


def test_safety_stock_is_never_sold_and_falls_through_the_threshold_as_a_sale_would():
    # given: 10 on hand, threshold 5
    variant = make_variant(threshold=5)
    main, spare = make_warehouse("main", 1), make_warehouse("spare", 2)
    level = stock_receive(variant=variant, warehouse=main, quantity=10)
    stock_receive(variant=variant, warehouse=spare, quantity=2)

    # when: 8 kept back in main
    with Recorder(stock_low) as low:
        stock_safety_set(variant=variant, warehouse=main, quantity=8, note="display stock")

    # then: 2 + 2 left to sell; the fall through the threshold alerts
    assert availability_by_variant(variant_ids=[variant.pk]) == {variant.pk: 4}
    assert low.calls == [{"variant_id": variant.pk, "available": 4, "threshold": 5}]
    stock_reserve(reference="SW-1", quantities=[(variant.pk, 4)])
    with pytest.raises(OutOfStock):
        stock_reserve(reference="SW-2", quantities=[(variant.pk, 1)])

    # when: safety stock above what is left in main counts as none there, not as less
    stock_safety_set(variant=variant, warehouse=main, quantity=12)
    assert availability_by_variant(variant_ids=[variant.pk]) == {variant.pk: 0}
    stock_receive(variant=variant, warehouse=spare, quantity=3)
    assert availability_by_variant(variant_ids=[variant.pk]) == {variant.pk: 3}

    # then: each change is a ledger row of its difference
    assert [row for row in ledger(level) if row[0] == "safety_stock"] == [
        ("safety_stock", 0, 0, 0, 0, 8),
        ("safety_stock", 0, 0, 0, 0, 4),
    ]
    assert stock_drift() == []


def test_a_purchase_order_is_incoming_until_received_in_parts_and_then_on_hand():
    # given
    mug, tee = make_variant(), make_variant()
    main = make_warehouse("main")
    stock_receive(variant=mug, warehouse=main, quantity=1)

    # when: 10 mugs and 4 tees ordered
    purchase_order = purchase_order_create(
        number="PO-1",
        supplier="Potteries Ltd",
        warehouse=main,
        expected_on=JUNE_1,
        lines=[PurchaseUnits(mug.pk, 10), PurchaseUnits(tee.pk, 4)],
    )

    # then: incoming, not for sale
    mug_level, tee_level = StockLevel.objects.get(variant=mug), StockLevel.objects.get(variant=tee)
    assert buckets(mug_level) == (1, 0, 10, 0, 0)
    assert buckets(tee_level) == (0, 0, 4, 0, 0)
    assert availability_by_variant(variant_ids=[mug.pk, tee.pk]) == {mug.pk: 1, tee.pk: 0}

    # when: a first delivery of 6 mugs
    with Recorder(stock_changed) as changed:
        purchase_order_receive(purchase_order=purchase_order, units=[PurchaseUnits(mug.pk, 6)])

    # then
    assert buckets(mug_level) == (7, 0, 4, 0, 0)
    assert purchase_order.status == "open"
    assert changed.calls[0]["availability_grew"] is True

    # when: more than is outstanding is refused; the rest arrives
    with pytest.raises(InvalidStockOperation, match="4 outstanding, not 5"):
        purchase_order_receive(purchase_order=purchase_order, units=[PurchaseUnits(mug.pk, 5)])
    purchase_order_receive(purchase_order=purchase_order)

    # then
    assert buckets(mug_level) == (11, 0, 0, 0, 0)
    assert buckets(tee_level) == (4, 0, 0, 0, 0)
    assert purchase_order.status == "received"
    assert ledger(mug_level)[1:] == [
        ("po_ordered", 0, 0, 10, 0, 0),
        ("receipt", 6, 0, -6, 0, 0),
        ("receipt", 4, 0, -4, 0, 0),
    ]
    # every movement of the purchase order names it (the first is the mug's earlier receipt)
    assert (
        list(
            StockMovement.objects.filter(level=mug_level)
            .order_by("pk")
            .values_list("reference", flat=True)[1:]
        )
        == ["PO-1"] * 3
    )
    assert stock_drift() == []
    with pytest.raises(InvalidStockOperation, match="received"):
        purchase_order_receive(purchase_order=purchase_order)


def test_closing_a_purchase_order_short_takes_what_never_came_off_incoming():
    # given: 5 ordered, 2 delivered
    variant = make_variant()
    main = make_warehouse("main")
    purchase_order = purchase_order_create(
        number="PO-2",
        supplier="Potteries Ltd",
        warehouse=main,
        expected_on=JUNE_1,
        lines=[PurchaseUnits(variant.pk, 5)],
    )
    purchase_order_receive(purchase_order=purchase_order, units=[PurchaseUnits(variant.pk, 2)])

    # when
    purchase_order_close(purchase_order=purchase_order, note="supplier out of stock")

    # then
    level = StockLevel.objects.get(variant=variant)
    assert buckets(level) == (2, 0, 0, 0, 0)
    assert purchase_order.status == "closed"
    line = PurchaseOrderLine.objects.get()
    assert (line.received, line.closed) == (2, 3)
    assert ledger(level)[-1] == ("po_closed", 0, 0, -3, 0, 0)
    assert stock_drift() == []


def test_a_bad_purchase_order_is_refused_and_writes_nothing():
    # given
    variant = make_variant()
    main = make_warehouse("main")

    # when / then
    for kwargs, message in [
        ({"number": " "}, "number"),
        ({"supplier": ""}, "supplier"),
        ({"lines": []}, "at least one line"),
        ({"lines": [PurchaseUnits(variant.pk, 0)]}, "positive"),
        ({"lines": [PurchaseUnits(987654, 1)]}, "does not exist"),
    ]:
        with pytest.raises(InvalidStockOperation, match=message):
            purchase_order_create(
                **{
                    "number": "PO-9",
                    "supplier": "Potteries Ltd",
                    "warehouse": main,
                    "expected_on": JUNE_1,
                    "lines": [PurchaseUnits(variant.pk, 1)],
                    **kwargs,
                }
            )
    assert not StockLevel.objects.exists()
    assert not StockMovement.objects.exists()


def test_the_product_page_outlook_names_the_next_date_and_its_units():
    # given: two open purchase orders and a closed one
    variant, other = make_variant(), make_variant()
    main = make_warehouse("main")
    for number, day, units in [("PO-A", 20, 4), ("PO-B", 10, 3), ("PO-C", 10, 2)]:
        purchase_order_create(
            number=number,
            supplier="Potteries Ltd",
            warehouse=main,
            expected_on=datetime.date(2027, 6, day),
            lines=[PurchaseUnits(variant.pk, units)],
        )
    early = purchase_order_create(
        number="PO-D",
        supplier="Potteries Ltd",
        warehouse=main,
        expected_on=datetime.date(2027, 6, 1),
        lines=[PurchaseUnits(variant.pk, 9)],
    )
    purchase_order_close(purchase_order=early)

    # when
    outlook = stock_outlook(variant_ids=[variant.pk, other.pk])

    # then: the 10th with 3 + 2 units; nothing for the other variant
    assert (outlook[variant.pk].incoming_on, outlook[variant.pk].incoming) == (
        datetime.date(2027, 6, 10),
        5,
    )
    assert (outlook[other.pk].policy, outlook[other.pk].incoming_on) == ("deny", None)


def test_inventory_verify_finds_incoming_that_no_purchase_order_expects():
    # given
    variant = make_variant()
    main = make_warehouse("main")
    purchase_order_create(
        number="PO-1",
        supplier="Potteries Ltd",
        warehouse=main,
        expected_on=JUNE_1,
        lines=[PurchaseUnits(variant.pk, 5)],
    )
    PurchaseOrderLine.objects.update(quantity=4)
    out = io.StringIO()

    # when
    with pytest.raises(CommandError, match="1 stock figure"):
        call_command("inventory_verify", stdout=out)

    # then
    level = StockLevel.objects.get()
    assert out.getvalue() == (
        f"level {level.pk} ({variant.sku} @ main): incoming 5 vs purchase orders 4\n"
    )


def test_the_database_keeps_each_bucket_at_zero_or_more_and_holds_within_on_hand():
    # given
    variant = make_variant()
    level = stock_receive(variant=variant, warehouse=make_warehouse("main"), quantity=3)
    stock_reserve(reference="SW-1", quantities=[(variant.pk, 2)])

    # when / then
    for change in [
        {"incoming": -1},
        {"unavailable": -1},
        {"safety_stock": -1},
        {"unavailable": 2},  # 2 reserved + 2 unavailable > 3 on hand
    ]:
        with pytest.raises(IntegrityError), transaction.atomic():
            StockLevel.objects.filter(pk=level.pk).update(**change)


def test_stock_policy_set_records_the_policy_audits_it_and_refuses_what_cannot_hold():
    # given
    mug = make_variant(threshold=0)
    stock_receive(variant=mug, warehouse=make_warehouse("main"), quantity=1)

    # when
    with Recorder(stock_changed) as changed:
        policy = stock_policy_set(variant=mug, policy="backorder", limit=4)

    # then: stored, audited, announced (product pages show the policy; no availability moved)
    assert StockPolicy.objects.values_list("policy", "limit", "release_date").get() == (
        "backorder",
        4,
        None,
    )
    assert policy.pk == mug.pk
    assert AuditEntry.objects.filter(object_type="inventory.StockPolicy").latest("pk").changes[
        "policy"
    ] == [
        "deny",
        "backorder",
    ]
    assert [(call["variant_ids"], call["availability_grew"]) for call in changed.calls] == [
        ([mug.pk], False)
    ]

    # when: refused settings change nothing
    stock_reserve(reference="SW-1", quantities=[(mug.pk, 4)])  # 1 held, 3 waiting
    for refused, message in [
        ({"policy": "sometimes"}, "a policy is one of"),
        ({"policy": "preorder", "limit": 5}, "needs a release date and a limit"),
        ({"policy": "preorder", "release_date": JUNE_1}, "needs a release date and a limit"),
        ({"policy": "backorder", "limit": -1}, "a limit is from 0"),
        ({"policy": "backorder", "limit": True}, "a limit is a whole number"),
        ({"policy": "backorder", "limit": 2}, "3 units of .* wait for stock"),
    ]:
        with pytest.raises(InvalidStockOperation, match=message):
            stock_policy_set(variant=mug, **refused)

    # then
    assert StockPolicy.objects.values_list("policy", "limit", "backordered").get() == (
        "backorder",
        4,
        3,
    )


@pytest.mark.parametrize(
    ("bucket", "expected"),
    [
        ("unavailable", "unavailable 3 vs ledger 2"),
        ("safety_stock", "safety_stock 3 vs ledger 2"),
        ("incoming", "incoming 3 vs ledger 2, incoming 3 vs purchase orders 2"),
    ],
)
def test_inventory_verify_finds_a_bucket_changed_behind_the_ledger(bucket, expected):
    # given: 2 units in every bucket, each moved by its service
    variant = make_variant(threshold=0)
    main = make_warehouse("main")
    stock_receive(variant=variant, warehouse=main, quantity=10)
    stock_hold(variant=variant, warehouse=main, quantity=2, reason="damaged", note="dropped")
    stock_safety_set(variant=variant, warehouse=main, quantity=2)
    purchase_order_create(
        number="PO-1",
        supplier="Potteries Ltd",
        warehouse=main,
        expected_on=JUNE_1,
        lines=[PurchaseUnits(variant.pk, 2)],
    )
    StockLevel.objects.update(**{bucket: 3})
    out = io.StringIO()

    # when
    with pytest.raises(CommandError, match="1 stock figure"):
        call_command("inventory_verify", stdout=out)

    # then
    level = StockLevel.objects.get()
    assert out.getvalue() == f"level {level.pk} ({variant.sku} @ main): {expected}\n"


@pytest.mark.parametrize("drift", ["policy count changed", "backorders without a policy"])
def test_inventory_verify_finds_backordered_units_the_policy_does_not_count(drift):
    # given: 3 units waiting for a variant
    variant = make_variant(threshold=0)
    stock_receive(variant=variant, warehouse=make_warehouse("main"), quantity=1)
    stock_policy_set(variant=variant, policy="backorder")
    stock_reserve(reference="SW-1", quantities=[(variant.pk, 4)])
    if drift == "policy count changed":
        StockPolicy.objects.update(backordered=2)
    else:
        StockPolicy.objects.all().delete()
    out = io.StringIO()

    # when
    with pytest.raises(CommandError, match="1 stock figure"):
        call_command("inventory_verify", stdout=out)

    # then
    counted = 2 if drift == "policy count changed" else 0
    assert out.getvalue() == (
        f"{variant.sku}: the stock policy counts {counted} units back-ordered, "
        "its backorders wait for 3\n"
    )


@pytest.mark.parametrize("move", ["adjust", "hold"])
def test_a_move_in_an_inactive_warehouse_raises_no_low_stock_alarm(move):
    # given: 4 mugs for sale (threshold 5), 10 in a closed warehouse
    mug = make_variant(threshold=5)
    stock_receive(variant=mug, warehouse=make_warehouse("main"), quantity=4)
    closed = make_warehouse("closed", is_active=False)
    with Recorder(stock_changed) as received:
        stock_receive(variant=mug, warehouse=closed, quantity=10)
    assert received.calls[0]["availability_grew"] is False

    # when: 9 of the closed warehouse's mugs are counted out, or held
    with Recorder(stock_low) as low, Recorder(stock_changed) as changed:
        if move == "adjust":
            stock_adjust(variant=mug, warehouse=closed, on_hand_delta=-9, note="stocktake")
        else:
            stock_hold(variant=mug, warehouse=closed, quantity=9, reason="damaged", note="wet")

    # then: what is for sale did not move
    assert low.calls == []
    assert [
        (call["availability_crossed_zero"], call["availability_grew"]) for call in changed.calls
    ] == [(False, False)]
    assert availability_by_variant(variant_ids=[mug.pk]) == {mug.pk: 4}


def test_an_overdue_purchase_order_stays_the_next_expected_with_its_past_date():
    # given: a delivery due yesterday that has not come, and a later one
    variant = make_variant()
    main = make_warehouse("main")
    yesterday = datetime.date.today() - datetime.timedelta(days=1)
    for number, expected_on in (("PO-LATE", yesterday), ("PO-NEXT", JUNE_1)):
        purchase_order_create(
            number=number,
            supplier="Potteries Ltd",
            warehouse=main,
            expected_on=expected_on,
            lines=[PurchaseUnits(variant.pk, 2)],
        )

    # when
    outlook = stock_outlook(variant_ids=[variant.pk])[variant.pk]

    # then: the late one, dated in the past, which is how a client tells it is overdue
    assert (outlook.incoming_on, outlook.incoming) == (yesterday, 2)
