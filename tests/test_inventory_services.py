"""Stock services: the ledger follows every change, reservations never oversell."""

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from model_bakery import baker

from audit.models import AuditEntry
from inventory.models import StockAllocation, StockLevel, StockMovement
from inventory.selectors import availability_by_variant, stock_drift
from inventory.services import (
    MAX_UNITS,
    InvalidStockOperation,
    OutOfStock,
    Shortage,
    imports,
    reservations,
    stock_adjust,
    stock_policy_set,
    stock_receive,
    stock_release,
    stock_reserve,
    stock_return,
    stock_set_on_hand,
    stock_ship,
)
from inventory.signals import stock_changed, stock_low
from outbox.models import OutboxMessage
from tests.inventory_helpers import Recorder, make_variant, make_warehouse

pytestmark = pytest.mark.django_db


def levels_of(variant) -> dict[str, tuple[int, int]]:
    return {
        level.warehouse.code: (level.on_hand, level.reserved)
        for level in StockLevel.objects.filter(variant=variant).select_related("warehouse")
    }


def test_receive_adds_units_writes_the_ledger_and_the_audit_trail():
    # given
    variant = make_variant()
    warehouse = make_warehouse("main", 10)

    # when
    with Recorder(stock_changed) as changed:
        level = stock_receive(variant=variant, warehouse=warehouse, quantity=12, note="PO 7")

    # then
    assert (level.on_hand, level.reserved) == (12, 0)
    movement = StockMovement.objects.get(level=level)
    assert (movement.on_hand_delta, movement.reserved_delta, movement.reason) == (12, 0, "receipt")
    assert changed.calls == [
        {
            "variant_ids": [variant.pk],
            "product_ids": [variant.product_id],
            "availability_crossed_zero": True,
            "availability_grew": True,
        }
    ]
    entry = AuditEntry.objects.get(object_type="inventory.StockLevel", object_id=str(level.pk))
    assert entry.action == "stock"
    assert entry.changes == {
        "on_hand": [0, 12],
        "reason": [None, "receipt"],
        "note": [None, "PO 7"],
    }
    assert stock_drift() == []


def test_adjust_needs_a_reason_and_lands_in_the_audit_trail():
    # given
    variant = make_variant()
    warehouse = make_warehouse("main")
    stock_receive(variant=variant, warehouse=warehouse, quantity=10)

    # when
    level = stock_adjust(
        variant=variant, warehouse=warehouse, on_hand_delta=-3, note="stocktake: 3 broken"
    )

    # then
    assert level.on_hand == 7
    assert StockMovement.objects.filter(level=level, reason="adjustment").get().on_hand_delta == -3
    entry = AuditEntry.objects.filter(object_id=str(level.pk)).order_by("-id").first()
    assert entry.changes["on_hand"] == [10, 7]
    assert entry.changes["note"] == [None, "stocktake: 3 broken"]
    assert stock_drift() == []


def test_reserve_draws_from_warehouses_by_priority():
    # given
    variant = make_variant()
    first = make_warehouse("first", 10)
    second = make_warehouse("second", 20)
    stock_receive(variant=variant, warehouse=second, quantity=10)
    stock_receive(variant=variant, warehouse=first, quantity=3)

    # when
    stock_reserve(reference="SW-1", quantities=[(variant.pk, 5)])

    # then
    held = dict(
        StockAllocation.objects.filter(reference="SW-1").values_list(
            "level__warehouse__code", "quantity"
        )
    )
    assert held == {"first": 3, "second": 2}
    assert sorted(
        StockMovement.objects.filter(reason="reservation").values_list(
            "level__warehouse__code", "on_hand_delta", "reserved_delta", "reference", "actor"
        )
    ) == [("first", 0, 3, "SW-1", None), ("second", 0, 2, "SW-1", None)]
    assert levels_of(variant) == {"first": (3, 3), "second": (10, 2)}
    assert availability_by_variant(variant_ids=[variant.pk]) == {variant.pk: 8}
    assert stock_drift() == []


def test_inactive_warehouses_are_not_reserved_from():
    # given
    variant = make_variant()
    closed = make_warehouse("closed", 1, is_active=False)
    stock_receive(variant=variant, warehouse=closed, quantity=10)

    # when
    with pytest.raises(OutOfStock) as raised:
        stock_reserve(reference="SW-2", quantities=[(variant.pk, 1)])

    # then
    assert raised.value.shortages == [Shortage(variant_id=variant.pk, requested=1, available=0)]
    assert StockAllocation.objects.count() == 0


def test_two_lines_of_the_same_sku_cannot_take_more_than_there_is():
    # given
    variant = make_variant()
    stock_receive(variant=variant, warehouse=make_warehouse("main"), quantity=5)

    # when
    with pytest.raises(OutOfStock) as raised, transaction.atomic():
        stock_reserve(reference="SW-3", quantities=[(variant.pk, 3), (variant.pk, 3)])

    # then
    assert raised.value.code == "out_of_stock"
    assert raised.value.shortages == [Shortage(variant_id=variant.pk, requested=6, available=5)]
    assert raised.value.retryable is False
    assert levels_of(variant) == {"main": (5, 0)}
    assert StockMovement.objects.filter(reason="reservation").count() == 0


def test_reserve_is_all_or_nothing_across_lines():
    # given
    plenty, scarce = make_variant(), make_variant()
    warehouse = make_warehouse("main")
    stock_receive(variant=plenty, warehouse=warehouse, quantity=50)
    stock_receive(variant=scarce, warehouse=warehouse, quantity=1)

    # when
    with pytest.raises(OutOfStock) as raised, transaction.atomic():
        stock_reserve(reference="SW-4", quantities=[(plenty.pk, 2), (scarce.pk, 2)])

    # then
    assert raised.value.shortages == [Shortage(variant_id=scarce.pk, requested=2, available=1)]
    assert levels_of(plenty) == {"main": (50, 0)}
    assert StockAllocation.objects.count() == 0


def test_unknown_variant_is_out_of_stock_with_nothing_available():
    with pytest.raises(OutOfStock) as raised:
        stock_reserve(reference="SW-5", quantities=[(987654, 1)])

    assert raised.value.shortages == [Shortage(variant_id=987654, requested=1, available=0)]


@pytest.mark.parametrize("quantity", [0, -1, 1.5, "2", True, None])
def test_reserve_refuses_a_quantity_that_is_not_a_positive_whole_number(quantity):
    # given
    variant = make_variant()
    stock_receive(variant=variant, warehouse=make_warehouse("main"), quantity=5)

    # when
    with pytest.raises(InvalidStockOperation) as raised:
        stock_reserve(reference="SW-6", quantities=[(variant.pk, quantity)])

    # then
    assert raised.value.code == "invalid_stock_operation"
    assert levels_of(variant) == {"main": (5, 0)}
    assert StockMovement.objects.filter(reason="reservation").count() == 0


@pytest.mark.parametrize("quantity", [0, -4, 2.0, "3", MAX_UNITS + 1])
def test_receive_refuses_a_bad_quantity_and_changes_nothing(quantity):
    variant = make_variant()
    warehouse = make_warehouse("main")

    with pytest.raises(InvalidStockOperation):
        stock_receive(variant=variant, warehouse=warehouse, quantity=quantity)

    assert StockLevel.objects.count() == 0
    assert StockMovement.objects.count() == 0


@pytest.mark.parametrize(
    ("delta", "note", "message"),
    [
        (0, "recount", "must not be zero"),
        (-1, "  ", "needs a reason"),
        (1.5, "recount", "whole number"),
        (-3, "recount", "fewer units on hand than are reserved"),
        (MAX_UNITS - 3, "found", f"more than {MAX_UNITS} units on hand"),
        (-MAX_UNITS - 1, "lost", f"at most {MAX_UNITS} units"),
        # reserved + MAX_UNITS is beyond the column: the guard must not compute it there
        (-MAX_UNITS, "lost", "fewer units on hand than are reserved"),
    ],
)
def test_adjust_refuses_bad_input_and_going_below_reserved(delta, note, message):
    # given
    variant = make_variant()
    warehouse = make_warehouse("main")
    stock_receive(variant=variant, warehouse=warehouse, quantity=4)
    stock_reserve(reference="SW-7", quantities=[(variant.pk, 2)])
    movements = StockMovement.objects.count()

    # when
    with pytest.raises(InvalidStockOperation, match=message):
        stock_adjust(variant=variant, warehouse=warehouse, on_hand_delta=delta, note=note)

    # then
    assert levels_of(variant) == {"main": (4, 2)}
    assert StockMovement.objects.count() == movements


def test_a_receipt_that_would_overflow_the_level_is_refused_and_changes_nothing():
    # given
    variant = make_variant()
    warehouse = make_warehouse("main")
    stock_receive(variant=variant, warehouse=warehouse, quantity=2)
    movements = StockMovement.objects.count()

    # when
    with pytest.raises(InvalidStockOperation, match=f"more than {MAX_UNITS} units on hand"):
        stock_receive(variant=variant, warehouse=warehouse, quantity=MAX_UNITS - 1)

    # then
    assert levels_of(variant) == {"main": (2, 0)}
    assert StockMovement.objects.count() == movements
    # and the column's last unit is still storable
    stock_receive(variant=variant, warehouse=warehouse, quantity=MAX_UNITS - 2)
    assert levels_of(variant) == {"main": (MAX_UNITS, 0)}


def test_adjust_of_a_level_that_does_not_exist_is_refused():
    with pytest.raises(InvalidStockOperation, match="no stock level"):
        stock_adjust(
            variant=make_variant(), warehouse=make_warehouse("main"), on_hand_delta=2, note="found"
        )

    assert StockLevel.objects.count() == 0


def test_release_gives_back_exactly_what_was_held_and_is_then_a_no_op():
    # given
    variant = make_variant()
    first, second = make_warehouse("first", 1), make_warehouse("second", 2)
    stock_receive(variant=variant, warehouse=first, quantity=2)
    stock_receive(variant=variant, warehouse=second, quantity=5)
    stock_reserve(reference="SW-8", quantities=[(variant.pk, 4)])

    staff = baker.make(get_user_model())

    # when
    with Recorder(stock_changed) as changed:
        stock_release(reference="SW-8", actor=staff, note="cancelled")
        stock_release(reference="SW-8", note="cancelled again")

    # then: one ledger row per level the reference held, saying who released it and why
    assert levels_of(variant) == {"first": (2, 0), "second": (5, 0)}
    assert changed.calls == [
        {
            "variant_ids": [variant.pk],
            "product_ids": [variant.product_id],
            "availability_crossed_zero": True,  # the first warehouse had none left
            "availability_grew": True,  # released units are for sale again
        }
    ]
    assert sorted(
        StockMovement.objects.filter(reason="release").values_list(
            "level__warehouse__code",
            "on_hand_delta",
            "reserved_delta",
            "reference",
            "actor",
            "note",
        )
    ) == [
        ("first", 0, -2, "SW-8", staff.pk, "cancelled"),
        ("second", 0, -2, "SW-8", staff.pk, "cancelled"),
    ]
    assert set(StockAllocation.objects.values_list("state", flat=True)) == {"released"}
    assert stock_drift() == []


def test_ship_moves_on_hand_and_reserved_down_and_return_brings_units_back():
    # given
    variant = make_variant()
    first, second = make_warehouse("first", 1), make_warehouse("second", 2)
    stock_receive(variant=variant, warehouse=first, quantity=2)
    stock_receive(variant=variant, warehouse=second, quantity=5)
    stock_reserve(reference="SW-9", quantities=[(variant.pk, 4)])

    staff = baker.make(get_user_model())

    def ledger(reason: str) -> list[tuple]:
        return sorted(
            StockMovement.objects.filter(reason=reason).values_list(
                "level__warehouse__code", "on_hand_delta", "reserved_delta", "actor", "note"
            )
        )

    # when
    stock_ship(reference="SW-9", actor=staff)

    # then
    assert levels_of(variant) == {"first": (0, 0), "second": (3, 0)}
    assert ledger("shipment") == [("first", -2, -2, staff.pk, ""), ("second", -2, -2, staff.pk, "")]
    assert stock_drift() == []

    # when: a note longer than the ledger keeps is cut to its 255 characters
    stock_return(reference="SW-9", note="parcel refused " * 20)

    # then
    assert levels_of(variant) == {"first": (2, 0), "second": (5, 0)}
    kept = ("parcel refused " * 20)[:255]
    assert ledger("return") == [("first", 2, 0, None, kept), ("second", 2, 0, None, kept)]
    assert set(StockAllocation.objects.values_list("state", flat=True)) == {"returned"}
    assert stock_drift() == []


def test_ship_and_return_without_held_stock_are_refused():
    # given
    variant = make_variant()
    stock_receive(variant=variant, warehouse=make_warehouse("main"), quantity=3)
    stock_reserve(reference="SW-10", quantities=[(variant.pk, 1)])
    stock_release(reference="SW-10")

    # when / then
    with pytest.raises(InvalidStockOperation, match="no reserved stock"):
        stock_ship(reference="SW-10")
    with pytest.raises(InvalidStockOperation, match="no shipped stock"):
        stock_return(reference="SW-10")
    assert levels_of(variant) == {"main": (3, 0)}


def test_stock_low_is_sent_once_when_availability_falls_through_the_threshold():
    # given
    variant = make_variant(threshold=5)
    stock_receive(variant=variant, warehouse=make_warehouse("main"), quantity=8)

    # when: 8 -> 6 (above), 6 -> 4 (falls through), 4 -> 2 (already below)
    with Recorder(stock_low) as low:
        stock_reserve(reference="SW-11", quantities=[(variant.pk, 2)])
        stock_reserve(reference="SW-12", quantities=[(variant.pk, 2)])
        stock_reserve(reference="SW-13", quantities=[(variant.pk, 2)])

    # then
    assert low.calls == [{"variant_id": variant.pk, "available": 4, "threshold": 5}]


def test_stock_low_is_sent_again_after_a_refill_and_a_new_fall():
    # given
    variant = make_variant(threshold=2)
    warehouse = make_warehouse("main")
    stock_receive(variant=variant, warehouse=warehouse, quantity=3)

    # when
    with Recorder(stock_low) as low:
        stock_adjust(variant=variant, warehouse=warehouse, on_hand_delta=-2, note="broken")
        stock_receive(variant=variant, warehouse=warehouse, quantity=10)
        stock_reserve(reference="SW-14", quantities=[(variant.pk, 10)])

    # then
    assert low.calls == [
        {"variant_id": variant.pk, "available": 1, "threshold": 2},
        {"variant_id": variant.pk, "available": 1, "threshold": 2},
    ]


def test_a_fall_through_the_threshold_requests_one_staff_alert_on_commit(
    django_capture_on_commit_callbacks, mailoutbox, settings
):
    # given
    settings.STAFF_ALERT_EMAILS = ["stock@example.com"]
    variant = make_variant(threshold=3)
    stock_receive(variant=variant, warehouse=make_warehouse("main"), quantity=4)

    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        stock_reserve(reference="SW-15", quantities=[(variant.pk, 2)])

    # then
    # The outbox publish and the cache invalidation; besides, where a push can reach a socket
    # (the Redis channel layer), live's pushes of the availability and of the low stock.
    pushes = [c for c in callbacks if getattr(c, "func", c).__module__ == "live.receivers"]
    assert len(callbacks) - len(pushes) == 2
    assert OutboxMessage.objects.filter(task_name="inventory.low_stock_alert").count() == 1
    assert [message.to for message in mailoutbox] == [["stock@example.com"]]
    assert mailoutbox[0].subject == f"Low stock: {variant.sku} (2 left)"


def test_a_fall_whose_alert_found_the_stock_refilled_does_not_silence_the_day(
    django_capture_on_commit_callbacks, mailoutbox, settings
):
    # given: 4 mugs, threshold 3
    settings.STAFF_ALERT_EMAILS = ["stock@example.com"]
    variant = make_variant(threshold=3)
    main = make_warehouse("main")
    stock_receive(variant=variant, warehouse=main, quantity=4)

    # when: a sale takes it to 2 (its alert queued behind other work), a receipt lands before
    # the alert runs (so it finds 12 and sends nothing), then sales take it down to 1
    with django_capture_on_commit_callbacks() as queued:
        stock_reserve(reference="SW-1", quantities=[(variant.pk, 2)])
    with django_capture_on_commit_callbacks(execute=True):
        stock_receive(variant=variant, warehouse=main, quantity=10)
    for callback in queued:
        callback()
    assert mailoutbox == []
    with django_capture_on_commit_callbacks(execute=True):
        stock_reserve(reference="SW-2", quantities=[(variant.pk, 11)])

    # then: staff hear of today's fall
    assert [message.subject for message in mailoutbox] == [f"Low stock: {variant.sku} (1 left)"]


def test_an_alert_sent_after_midnight_counts_for_the_day_it_fell(
    django_capture_on_commit_callbacks, mailoutbox, settings, monkeypatch
):
    # given: 4 mugs, threshold 3, on 1 March
    settings.STAFF_ALERT_EMAILS = ["stock@example.com"]
    variant = make_variant(threshold=3)
    main = make_warehouse("main")
    stock_receive(variant=variant, warehouse=main, quantity=4)
    today = [datetime.date(2026, 3, 1)]
    monkeypatch.setattr(timezone, "localdate", lambda *args, **kwargs: today[0])

    # when: it falls to 2 just before midnight and the alert goes out after it; on 2 March it
    # is refilled and falls to 1 again
    with django_capture_on_commit_callbacks() as queued:
        stock_reserve(reference="SW-1", quantities=[(variant.pk, 2)])
    today[0] = datetime.date(2026, 3, 2)
    for callback in queued:
        callback()
    with django_capture_on_commit_callbacks(execute=True):
        stock_receive(variant=variant, warehouse=main, quantity=10)
    with django_capture_on_commit_callbacks(execute=True):
        stock_reserve(reference="SW-2", quantities=[(variant.pk, 11)])

    # then: one alert for each day it fell
    assert [message.subject for message in mailoutbox] == [
        f"Low stock: {variant.sku} (2 left)",
        f"Low stock: {variant.sku} (1 left)",
    ]


def test_a_rolled_back_reservation_schedules_no_task(django_capture_on_commit_callbacks):
    # given
    variant = make_variant(threshold=3)
    stock_receive(variant=variant, warehouse=make_warehouse("main"), quantity=4)

    # when
    with django_capture_on_commit_callbacks() as callbacks:
        try:
            with transaction.atomic():
                stock_reserve(reference="SW-16", quantities=[(variant.pk, 2)])
                raise RuntimeError("the order failed after reserving")
        except RuntimeError:
            pass

    # then
    assert callbacks == []
    assert OutboxMessage.objects.filter(task_name="inventory.low_stock_alert").count() == 0
    assert levels_of(variant) == {"main": (4, 0)}


def test_reserve_costs_the_same_queries_for_one_line_and_twenty(
    django_assert_max_num_queries, django_assert_num_queries
):
    # given
    warehouses = [make_warehouse("first", 1), make_warehouse("second", 2)]
    variants = [make_variant(threshold=0) for _ in range(20)]
    for variant in variants:
        for warehouse in warehouses:
            stock_receive(variant=variant, warehouse=warehouse, quantity=4)

    # when / then: the plan, then the guarded UPDATE with the allocations and the ledger rows
    # written in it (on SQLite those two are statements of their own)
    queries = 2 if connection.vendor == "postgresql" else 4
    with django_assert_num_queries(queries):
        stock_reserve(reference="SW-17", quantities=[(variants[0].pk, 1)])
    with django_assert_max_num_queries(queries):
        # 5 units of each: every line is split over both warehouses (40 levels), none runs low
        stock_reserve(reference="SW-18", quantities=[(variant.pk, 5) for variant in variants])
    assert StockAllocation.objects.filter(reference="SW-18").count() == 40
    assert stock_drift() == []


def test_a_plan_made_stale_by_another_buyer_is_refused_as_retryable(monkeypatch):
    # given: 3 units in the first warehouse, 10 in the second
    variant = make_variant(threshold=0)
    first, second = make_warehouse("first", 1), make_warehouse("second", 2)
    stock_receive(variant=variant, warehouse=first, quantity=3)
    stock_receive(variant=variant, warehouse=second, quantity=10)
    first_level = StockLevel.objects.get(warehouse=first)
    plan = reservations._reservation_candidates

    def plan_then_lose_the_first_warehouse(variant_ids, **options):
        candidates = plan(variant_ids, **options)
        # another buyer takes the first warehouse's units between our plan and our update
        StockLevel.objects.filter(pk=first_level.pk).update(reserved=3)
        return candidates

    monkeypatch.setattr(reservations, "_reservation_candidates", plan_then_lose_the_first_warehouse)

    # when
    with pytest.raises(OutOfStock) as raised, transaction.atomic():
        stock_reserve(reference="SW-19", quantities=[(variant.pk, 5)])

    # then: the second warehouse alone could serve the order now, and nothing of the refused
    # attempt is left
    assert raised.value.retryable is True
    assert not StockAllocation.objects.filter(reference="SW-19").exists()
    assert not StockMovement.objects.filter(reference="SW-19").exists()
    assert raised.value.shortages == [Shortage(variant_id=variant.pk, requested=5, available=10)]
    assert levels_of(variant) == {"first": (3, 0), "second": (10, 0)}
    assert StockAllocation.objects.count() == 0


def test_a_stale_plan_refusal_names_only_the_variants_short_now(monkeypatch):
    # given: two variants; another buyer takes the first warehouse's units of both between
    # our plan and our update, which leaves the mug enough in the second warehouse
    mug, cup = make_variant(threshold=0), make_variant(threshold=0)
    first, second = make_warehouse("first", 1), make_warehouse("second", 2)
    stock_receive(variant=mug, warehouse=first, quantity=3)
    stock_receive(variant=mug, warehouse=second, quantity=10)
    stock_receive(variant=cup, warehouse=first, quantity=2)
    plan = reservations._reservation_candidates

    def plan_then_lose_the_first_warehouse(variant_ids, **options):
        candidates = plan(variant_ids, **options)
        StockLevel.objects.filter(warehouse=first).update(reserved=F("on_hand"))
        return candidates

    monkeypatch.setattr(reservations, "_reservation_candidates", plan_then_lose_the_first_warehouse)

    # when
    with pytest.raises(OutOfStock) as raised, transaction.atomic():
        stock_reserve(reference="SW-20", quantities=[(mug.pk, 5), (cup.pk, 2)])

    # then: the refusal is final and names the cup alone, with what is left of it
    assert raised.value.retryable is False
    assert raised.value.shortages == [Shortage(variant_id=cup.pk, requested=2, available=0)]


@pytest.mark.parametrize("target", [-1, MAX_UNITS + 1, 2.0])
def test_setting_on_hand_outside_the_column_is_refused_and_changes_nothing(target):
    # given
    mug = make_variant()
    main = make_warehouse("main")

    # when
    with pytest.raises(InvalidStockOperation, match=f"from 0 to {MAX_UNITS}"):
        stock_set_on_hand(targets={(mug.pk, main.pk): 1, (mug.pk, main.pk + 1): target})

    # then
    assert StockLevel.objects.count() == 0


def test_every_stock_movement_says_whether_a_level_ran_out_or_came_back():
    # given a variant and two warehouses
    mug = make_variant()
    main, spare = make_warehouse("main", 10), make_warehouse("spare", 20)
    key = (mug.pk, main.pk)

    # when each kind of movement happens, crossing zero or not
    with Recorder(stock_changed) as changed:
        stock_receive(variant=mug, warehouse=main, quantity=10)  # 0 -> 10
        stock_receive(variant=mug, warehouse=main, quantity=3)  # 10 -> 13
        stock_reserve(reference="SW-1", quantities=[(mug.pk, 13)])  # 13 -> 0
        stock_ship(reference="SW-1")  # 0 -> 0: on hand and reserved fall together
        stock_return(reference="SW-1")  # 0 -> 13
        stock_reserve(reference="SW-2", quantities=[(mug.pk, 5)])  # 13 -> 8
        stock_release(reference="SW-2")  # 8 -> 13
        stock_adjust(variant=mug, warehouse=main, on_hand_delta=-13, note="flood")  # 13 -> 0
        stock_adjust(variant=mug, warehouse=main, on_hand_delta=2, note="found")  # 0 -> 2
        stock_set_on_hand(targets={key: 5})  # 2 -> 5
        stock_set_on_hand(targets={key: 0})  # 5 -> 0
        stock_set_on_hand(targets={(mug.pk, spare.pk): 4})  # a new level: 0 -> 4

    # then
    assert [call["availability_crossed_zero"] for call in changed.calls] == [
        True,
        False,
        True,
        False,
        True,
        False,
        False,
        True,
        True,
        False,
        True,
        True,
    ]


def test_an_import_racing_a_sale_still_says_when_the_level_ran_out(monkeypatch):
    # given 5 mugs, and a sale of 3 that lands between the import's read and its update (its
    # compare-and-set guards on_hand only)
    mug = make_variant()
    main = make_warehouse("main", 10)
    stock_receive(variant=mug, warehouse=main, quantity=5)
    update_levels = imports.update_levels

    def sale_then_update(**kwargs):
        stock_reserve(reference="SW-1", quantities=[(mug.pk, 3)])
        return update_levels(**kwargs)

    monkeypatch.setattr(imports, "update_levels", sale_then_update)

    # when the import counts 3 on hand
    with Recorder(stock_changed) as changed:
        stock_set_on_hand(targets={(mug.pk, main.pk): 3})

    # then the sale left 2 available, the import none
    assert levels_of(mug) == {"main": (3, 3)}
    assert [call["availability_crossed_zero"] for call in changed.calls] == [False, True]


def test_every_stock_movement_announces_its_variants_with_their_products():
    # given two variants of two products, in stock
    mug, tee = make_variant(), make_variant()
    warehouse = make_warehouse("main", 10)
    products = sorted([mug.product_id, tee.product_id])

    # when every kind of movement happens
    with Recorder(stock_changed) as changed:
        stock_receive(variant=mug, warehouse=warehouse, quantity=10)
        stock_receive(variant=tee, warehouse=warehouse, quantity=10)
        stock_adjust(variant=mug, warehouse=warehouse, on_hand_delta=-1, note="breakage")
        stock_reserve(reference="SW-1", quantities=[(mug.pk, 2), (tee.pk, 1)])
        stock_ship(reference="SW-1")
        stock_return(reference="SW-1")
        stock_reserve(reference="SW-2", quantities=[(mug.pk, 1), (tee.pk, 1)])
        stock_release(reference="SW-2")
        stock_set_on_hand(targets={(mug.pk, warehouse.pk): 3, (tee.pk, warehouse.pk): 4})

    # then each announcement names the products of the variants it moved
    assert [call["product_ids"] for call in changed.calls] == [
        [mug.product_id],
        [tee.product_id],
        [mug.product_id],
        products,
        products,
        products,
        products,
        products,
        products,
    ]
    assert all(call["variant_ids"] == sorted(call["variant_ids"]) for call in changed.calls)


@pytest.mark.postgres
def test_a_checkout_planning_under_locks_locks_the_policies_in_variant_order():
    # given: two variants that back-order, one unit of each on hand
    mug, cup = make_variant(threshold=0), make_variant(threshold=0)
    for variant in (cup, mug):
        stock_receive(variant=variant, warehouse=make_warehouse(f"w{variant.pk}"), quantity=1)
        stock_policy_set(variant=variant, policy="backorder")

    # when: the retry's plan, which locks
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        stock_reserve(reference="SW-21", quantities=[(cup.pk, 2), (mug.pk, 2)], lock_rows=True)

    # then: the policies are locked in the documented order (levels, then policies by
    # variant), so two retries locking the same policies cannot deadlock
    (policy_lock,) = [
        query["sql"]
        for query in queries.captured_queries
        if "FOR NO KEY UPDATE" in query["sql"] and 'FROM "inventory_stockpolicy"' in query["sql"]
    ]
    assert policy_lock.startswith('SELECT "inventory_stockpolicy"."variant_id"')
    assert "ORDER BY 1 ASC FOR NO KEY UPDATE" in policy_lock  # 1: the variant id
