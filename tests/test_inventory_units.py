"""Settling a reservation in parts: ship, release and return by units, never beyond what is held."""

import pytest
from django.db import IntegrityError, transaction

from inventory.models import StockAllocation, StockLevel, StockMovement
from inventory.selectors import allocated_units, stock_drift
from inventory.services import (
    Shortage,
    StockUnits,
    UnitsNotHeld,
    stock_receive,
    stock_release,
    stock_reserve,
    stock_return,
    stock_ship,
)
from inventory.signals import stock_changed
from tests.inventory_helpers import Recorder, make_variant, make_warehouse

pytestmark = pytest.mark.django_db


def levels_of(variant) -> dict[str, tuple[int, int]]:
    return {
        level.warehouse.code: (level.on_hand, level.reserved)
        for level in StockLevel.objects.filter(variant=variant).select_related("warehouse")
    }


def allocations_of(reference: str) -> list[tuple]:
    return list(
        StockAllocation.objects.filter(reference=reference)
        .order_by("level__warehouse__priority")
        .values_list(
            "level__warehouse__code", "quantity", "shipped", "released", "returned", "state"
        )
    )


@pytest.fixture
def split_reservation():
    """5 units of one variant held by SW-1: 2 in `first` (priority 1), 3 in `second`."""
    variant = make_variant()
    first, second = make_warehouse("first", 1), make_warehouse("second", 2)
    stock_receive(variant=variant, warehouse=first, quantity=2)
    stock_receive(variant=variant, warehouse=second, quantity=10)
    stock_reserve(reference="SW-1", quantities=[(variant.pk, 5)])
    return variant, first, second


def test_a_shipment_from_one_warehouse_moves_exactly_its_units(split_reservation):
    # given
    variant, _, second = split_reservation

    # when
    with Recorder(stock_changed) as changed:
        shipped = stock_ship(
            reference="SW-1",
            units=[StockUnits(variant_id=variant.pk, quantity=2, warehouse_id=second.pk)],
        )

    # then
    assert shipped == [StockUnits(variant_id=variant.pk, quantity=2, warehouse_id=second.pk)]
    assert levels_of(variant) == {"first": (2, 2), "second": (8, 1)}
    assert allocations_of("SW-1") == [
        ("first", 2, 0, 0, 0, "reserved"),
        ("second", 3, 2, 0, 0, "reserved"),
    ]
    assert list(
        StockMovement.objects.filter(reason="shipment").values_list(
            "level__warehouse__code", "on_hand_delta", "reserved_delta", "reference"
        )
    ) == [("second", -2, -2, "SW-1")]
    assert changed.calls == [
        {
            "variant_ids": [variant.pk],
            "product_ids": [variant.product_id],
            "availability_crossed_zero": False,
            "availability_grew": False,  # a shipment takes units that were reserved
        }
    ]
    assert stock_drift() == []


def test_shipping_more_than_a_warehouse_holds_for_the_reference_moves_nothing(split_reservation):
    # given
    variant, first, _ = split_reservation

    # when
    with pytest.raises(UnitsNotHeld) as error:
        stock_ship(
            reference="SW-1",
            units=[StockUnits(variant_id=variant.pk, quantity=3, warehouse_id=first.pk)],
        )

    # then
    assert error.value.code == "units_not_held"
    assert error.value.shortages == [Shortage(variant_id=variant.pk, requested=3, available=2)]
    assert levels_of(variant) == {"first": (2, 2), "second": (10, 3)}
    assert not StockMovement.objects.filter(reason="shipment").exists()
    assert {row[5] for row in allocations_of("SW-1")} == {"reserved"}


def test_release_by_units_gives_back_the_last_warehouse_first(split_reservation):
    # given
    variant, _, _ = split_reservation

    # when
    released = stock_release(reference="SW-1", units=[StockUnits(variant.pk, 4)], note="partial")

    # then: all 3 of `second`, then 1 of `first`; 1 unit stays held in `first`
    assert [(unit.quantity, unit.warehouse_id) for unit in released] == [
        (1, StockLevel.objects.get(variant=variant, warehouse__code="first").warehouse_id),
        (3, StockLevel.objects.get(variant=variant, warehouse__code="second").warehouse_id),
    ]
    assert levels_of(variant) == {"first": (2, 1), "second": (10, 0)}
    assert allocations_of("SW-1") == [
        ("first", 2, 0, 1, 0, "reserved"),
        ("second", 3, 0, 3, 0, "released"),
    ]
    assert stock_drift() == []

    # and the whole-reference release gives back only what is still held
    stock_release(reference="SW-1")
    assert levels_of(variant) == {"first": (2, 0), "second": (10, 0)}
    assert allocations_of("SW-1")[0] == ("first", 2, 0, 2, 0, "released")


def test_a_return_restocks_into_another_warehouse_and_never_beyond_what_shipped(
    split_reservation,
):
    # given
    variant, first, _ = split_reservation
    returns = make_warehouse("returns", 50)
    stock_ship(reference="SW-1", units=[StockUnits(variant.pk, 2, first.pk)])

    # when
    returned = stock_return(
        reference="SW-1", units=[StockUnits(variant.pk, 1, returns.pk)], note="parcel back"
    )

    # then: the level in `returns` is created and gets the unit
    assert returned == [StockUnits(variant_id=variant.pk, quantity=1, warehouse_id=returns.pk)]
    assert levels_of(variant) == {"first": (0, 0), "second": (10, 3), "returns": (1, 0)}
    assert allocations_of("SW-1")[0] == ("first", 2, 2, 0, 1, "shipped")
    assert stock_drift() == []

    # when: more than what is still out comes back
    with pytest.raises(UnitsNotHeld):
        stock_return(reference="SW-1", units=[StockUnits(variant.pk, 2, returns.pk)])

    # then
    assert levels_of(variant)["returns"] == (1, 0)


def test_allocated_units_lists_what_each_warehouse_holds_and_has_out(split_reservation):
    # given
    variant, _, second = split_reservation
    stock_ship(reference="SW-1", units=[StockUnits(variant.pk, 1, second.pk)])

    # when
    units = allocated_units(reference="SW-1")

    # then
    assert [(u.warehouse_code, u.held, u.out) for u in units] == [("first", 2, 0), ("second", 2, 1)]


def test_an_allocation_cannot_settle_more_units_than_it_reserved(split_reservation):
    # given
    allocation = StockAllocation.objects.get(reference="SW-1", level__warehouse__code="first")

    # when / then: the database refuses what a bug in the services might try
    for changes in (
        {"shipped": 2, "released": 1, "state": "released"},
        {"shipped": 1, "returned": 2},
        {"shipped": 2, "state": "reserved"},
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            StockAllocation.objects.filter(pk=allocation.pk).update(**changes)
