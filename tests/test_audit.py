"""The audit trail: who changed what, field by field, committed with the change itself."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import transaction
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils import timezone
from model_bakery import baker

from audit.context import acting_as
from audit.middleware import AuditActorMiddleware
from audit.models import AuditAction, AuditEntry
from audit.registry import audit_register
from audit.services import audit_record
from catalog.models import Category, Product, Variant
from catalog.services import InvalidPrice, variant_price_bulk_set
from catalog.signals import catalog_changed


class Rollback(Exception):
    pass


@pytest.fixture
def variant() -> Variant:
    product = Product.objects.create(name="Desk Lamp")
    variant = Variant.objects.create(product=product, sku="LAMP-1", price=Decimal("10.00"))
    AuditEntry.objects.all().delete()
    return variant


@pytest.fixture
def staff() -> User:
    return baker.make(User, username="clara", is_staff=True)


def _entries() -> list[tuple[str, str, str, dict]]:
    return list(
        AuditEntry.objects.order_by("id").values_list(
            "actor_label", "action", "object_type", "changes"
        )
    )


@pytest.mark.django_db
def test_a_price_change_in_a_request_is_recorded_with_the_user_and_the_diff(variant, staff):
    # given a view that changes a price, behind the audit middleware
    def change_price(request):
        edited = Variant.objects.get(pk=variant.pk)
        edited.price = Decimal("12.5")
        edited.save()
        return HttpResponse(status=204)

    request = RequestFactory().post("/change-price")
    request.user = staff

    # when
    response = AuditActorMiddleware(change_price)(request)

    # then
    assert response.status_code == 204
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.actor_label, entry.action) == (staff, "clara", AuditAction.UPDATE)
    assert (entry.object_type, entry.object_id, entry.object_repr) == (
        "catalog.Variant",
        str(variant.pk),
        "LAMP-1",
    )
    assert entry.changes == {"price": ["10.00", "12.50"]}


@pytest.mark.django_db
def test_a_change_outside_any_request_is_recorded_as_system(variant, staff):
    # given a request has come and gone
    AuditActorMiddleware(lambda request: HttpResponse())(_request_by(staff))

    # when a command or task changes the variant
    variant.is_active = False
    variant.save()

    # then
    assert _entries() == [
        ("system", "update", "catalog.Variant", {"is_active": [True, False]}),
    ]
    assert AuditEntry.objects.get().actor is None


@pytest.mark.django_db
def test_a_change_made_by_a_management_command_is_recorded_as_system(variant):
    # when
    call_command(
        "shell",
        command=(
            "from catalog.models import Variant; "
            f"v = Variant.objects.get(pk={variant.pk}); v.name = 'Matte'; v.save()"
        ),
    )

    # then
    assert _entries() == [("system", "update", "catalog.Variant", {"name": ["", "Matte"]})]


@pytest.mark.django_db
def test_acting_as_names_the_user_for_a_command_or_task(variant, staff):
    # when
    with acting_as(staff):
        variant.low_stock_threshold = 2
        variant.save()
    variant.low_stock_threshold = 3
    variant.save()

    # then
    assert [(label, changes) for label, _, _, changes in _entries()] == [
        ("clara", {"low_stock_threshold": [5, 2]}),
        ("system", {"low_stock_threshold": [2, 3]}),
    ]


@pytest.mark.django_db
def test_a_save_that_changes_nothing_records_nothing(variant):
    # when the same values are saved again, a price even written differently
    variant.price = "10"
    variant.save()
    Variant.objects.get(pk=variant.pk).save()

    # then
    assert AuditEntry.objects.count() == 0


@pytest.mark.django_db
def test_create_and_delete_record_every_audited_field():
    # given
    category = Category.objects.create(name="Lighting")

    # when
    product = Product.objects.create(name="Floor Lamp", category=category, description="Tall")
    product_id = product.pk
    product.delete()

    # then neither timestamps nor the derived search document are part of the record
    fields = {"name", "slug", "description", "category_id", "is_active"}
    created, deleted = AuditEntry.objects.filter(object_type="catalog.Product").order_by("id")
    assert (created.action, created.object_id) == (AuditAction.CREATE, str(product_id))
    assert created.changes == {
        "name": [None, "Floor Lamp"],
        "slug": [None, "floor-lamp"],
        "description": [None, "Tall"],
        "category_id": [None, category.pk],
        "is_active": [None, True],
    }
    assert (deleted.action, set(deleted.changes)) == (AuditAction.DELETE, fields)
    assert deleted.changes["name"] == ["Floor Lamp", None]


@pytest.mark.django_db
def test_an_object_built_with_an_existing_pk_is_diffed_against_the_stored_row(variant):
    # when a row is overwritten from a hand-built instance (as an API might)
    Variant(
        pk=variant.pk,
        product=variant.product,
        sku="LAMP-1",
        price=Decimal("10.00"),
        low_stock_threshold=9,
        created_at=variant.created_at,
    ).save()

    # then it is an update of the one field that differs, not a create
    assert _entries() == [
        ("system", "update", "catalog.Variant", {"low_stock_threshold": [5, 9]}),
    ]


@pytest.mark.django_db
def test_a_rolled_back_change_leaves_no_audit_entry(variant):
    # when
    with pytest.raises(Rollback), transaction.atomic():
        variant.price = Decimal("99.00")
        variant.save()
        raise Rollback

    # then
    assert AuditEntry.objects.count() == 0


@pytest.mark.django_db
def test_update_fields_limit_the_diff_to_the_fields_saved(variant):
    # given an instance edited in two fields
    variant.price = Decimal("11.00")
    variant.name = "Brass"

    # when only one of them is saved
    variant.save(update_fields=["name"])

    # then
    assert [changes for *_, changes in _entries()] == [{"name": ["", "Brass"]}]


@pytest.mark.django_db
def test_fixture_loading_records_nothing():
    # when a raw save, as loaddata does
    now = timezone.now()
    Category(pk=77, name="Loaded", slug="loaded", created_at=now, updated_at=now).save_base(
        raw=True
    )

    # then
    assert AuditEntry.objects.count() == 0


@pytest.mark.django_db
def test_an_explicit_entry_names_the_given_actor(variant, staff):
    # when (a stock receipt is recorded like this by inventory)
    entry = audit_record(
        action=AuditAction.STOCK, obj=variant, changes={"on_hand": [0, 12]}, actor=staff
    )

    # then
    assert _entries() == [("clara", "stock", "catalog.Variant", {"on_hand": [0, 12]})]
    assert entry.actor == staff


@pytest.mark.django_db
def test_a_bulk_price_change_is_audited_and_announced_once(variant, staff):
    # given a second variant and a listener for the batch signal
    other = Variant.objects.create(product=variant.product, sku="LAMP-2", price=Decimal("20.00"))
    AuditEntry.objects.all().delete()
    batches = []

    def listen(sender, product_ids, **kwargs):
        batches.append(product_ids)

    catalog_changed.connect(listen, dispatch_uid="test_bulk_price_listener")

    # when one price changes, one stays and an unknown id is ignored
    try:
        changed = variant_price_bulk_set(
            prices={variant.pk: Decimal("14.999"), other.pk: Decimal("20"), 10**9: Decimal("1")},
            actor=staff,
        )
    finally:
        catalog_changed.disconnect(dispatch_uid="test_bulk_price_listener")

    # then
    assert changed == 1
    assert batches == [[variant.product_id]]
    assert list(Variant.objects.order_by("sku").values_list("price", flat=True)) == [
        Decimal("15.00"),
        Decimal("20.00"),
    ]
    assert _entries() == [("clara", "update", "catalog.Variant", {"price": ["10.00", "15.00"]})]


@pytest.mark.django_db
@pytest.mark.parametrize("bad", [Decimal("0"), Decimal("-1"), "abc", Decimal("NaN")])
def test_a_bulk_price_change_with_a_bad_price_changes_nothing(variant, bad):
    # when
    with pytest.raises(InvalidPrice) as raised:
        variant_price_bulk_set(prices={variant.pk: bad})

    # then
    assert raised.value.code == "invalid_price"
    assert Variant.objects.get(pk=variant.pk).price == Decimal("10.00")
    assert AuditEntry.objects.count() == 0


def test_registering_an_unknown_field_is_refused():
    with pytest.raises(ValueError, match=r"catalog\.Variant has no field"):
        audit_register(Variant, exclude=("colour",))


def _request_by(user):
    request = RequestFactory().get("/")
    request.user = user
    return request
