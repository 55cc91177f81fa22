"""pre_save notes what a variant save replaces, for the receivers that react to the change."""

from decimal import Decimal

import pytest
from django.db.models.signals import post_save

from catalog.models import Product, Variant


@pytest.fixture
def seen_by_post_save():
    """What a post_save receiver (the storefront cache, say) sees of the replaced values."""
    seen = []

    def remember(sender, instance, **kwargs):
        seen.append((instance._previous_price, instance._previous_is_active))

    post_save.connect(remember, sender=Variant, dispatch_uid="test_previous_values")
    yield seen
    post_save.disconnect(sender=Variant, dispatch_uid="test_previous_values")


@pytest.mark.django_db
def test_a_receiver_sees_the_price_and_active_flag_a_save_replaced(seen_by_post_save):
    # given
    product = Product.objects.create(name="Kettle")
    variant = Variant.objects.create(product=product, sku="KET-1", price=Decimal("30.00"))

    # when
    variant.price = Decimal("27.50")
    variant.is_active = False
    variant.save()

    # then the new row had nothing before it; the update replaced 30.00 and active
    assert seen_by_post_save == [(None, None), (Decimal("30.00"), True)]
