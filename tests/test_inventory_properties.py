"""Property: any sequence of stock operations keeps the invariants and the ledger exact."""

from collections import Counter

import pytest
from django.db import transaction
from django.db.models import F, Q, Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inventory.models import StockLevel
from inventory.selectors import availability_by_variant, stock_drift
from inventory.services import (
    InvalidStockOperation,
    OutOfStock,
    stock_adjust,
    stock_receive,
    stock_release,
    stock_reserve,
    stock_ship,
)
from tests.inventory_helpers import make_variant, make_warehouse

pytestmark = pytest.mark.django_db

VARIANT = st.integers(0, 1)
WAREHOUSE = st.integers(0, 1)
REFERENCE = st.integers(0, 5)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("receive"), VARIANT, WAREHOUSE, st.integers(-1, 6)),
        st.tuples(st.just("adjust"), VARIANT, WAREHOUSE, st.integers(-6, 3)),
        st.tuples(
            st.just("reserve"),
            st.lists(st.tuples(VARIANT, st.integers(0, 5)), min_size=1, max_size=3),
        ),
        st.tuples(st.just("release"), REFERENCE),
        st.tuples(st.just("ship"), REFERENCE),
    ),
    max_size=12,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=OPERATIONS)
def test_any_sequence_of_stock_operations_keeps_levels_equal_to_the_ledger(operations):
    with transaction.atomic():
        variants = [make_variant(threshold=2), make_variant(threshold=2)]
        warehouses = [make_warehouse("w-first", 1), make_warehouse("w-second", 2)]
        model = StockModel()
        references = 0
        for operation in operations:
            kind = operation[0]
            try:
                with transaction.atomic():
                    if kind == "receive":
                        _, v, w, quantity = operation
                        stock_receive(
                            variant=variants[v], warehouse=warehouses[w], quantity=quantity
                        )
                        model.on_hand[v] += quantity
                    elif kind == "adjust":
                        _, v, w, delta = operation
                        stock_adjust(
                            variant=variants[v],
                            warehouse=warehouses[w],
                            on_hand_delta=delta,
                            note="count",
                        )
                        model.on_hand[v] += delta
                    elif kind == "reserve":
                        references += 1
                        lines = [(variants[v].pk, quantity) for v, quantity in operation[1]]
                        wanted = Counter()
                        for v, quantity in operation[1]:
                            wanted[v] += quantity
                        stock_reserve(reference=f"R{references}", quantities=lines)
                        assert all(quantity > 0 for _, quantity in lines)
                        assert all(wanted[v] <= model.available(v) for v in wanted)
                        model.held[f"R{references}"] = wanted
                        for v, quantity in wanted.items():
                            model.reserved[v] += quantity
                    elif kind == "release":
                        reference = f"R{operation[1]}"
                        stock_release(reference=reference)
                        for v, quantity in model.held.pop(reference, {}).items():
                            model.reserved[v] -= quantity
                    else:
                        reference = f"R{operation[1]}"
                        stock_ship(reference=reference)
                        for v, quantity in model.held.pop(reference).items():
                            model.reserved[v] -= quantity
                            model.on_hand[v] -= quantity
            except OutOfStock as error:
                # Refused only when the plan really could not cover a line.
                assert any(s.available < s.requested for s in error.shortages)
                for shortage in error.shortages:
                    v = [variant.pk for variant in variants].index(shortage.variant_id)
                    assert shortage.available == model.available(v)
            except InvalidStockOperation:
                pass

            # then, after every step
            for v, variant in enumerate(variants):
                totals = StockLevel.objects.filter(variant=variant).aggregate(
                    on_hand=Sum("on_hand"), reserved=Sum("reserved")
                )
                assert (totals["on_hand"] or 0, totals["reserved"] or 0) == (
                    model.on_hand[v],
                    model.reserved[v],
                )
                assert availability_by_variant(variant_ids=[variant.pk]) == {
                    variant.pk: model.available(v)
                }
            assert not StockLevel.objects.filter(
                Q(on_hand__lt=0) | Q(reserved__lt=0) | Q(reserved__gt=F("on_hand"))
            ).exists()
            assert stock_drift() == []
        transaction.set_rollback(True)


class StockModel:
    """The expected totals per variant, kept by hand beside the database."""

    def __init__(self) -> None:
        self.on_hand = Counter()
        self.reserved = Counter()
        self.held: dict[str, Counter] = {}

    def available(self, v: int) -> int:
        return self.on_hand[v] - self.reserved[v]
