from django.db import migrations


def sync_roles(apps, schema_editor):
    from backoffice.roles import roles_sync

    roles_sync(apps=apps)


class Migration(migrations.Migration):
    """Warehouse staff place, receive and close purchase orders, move stock to and from
    unavailable and set safety stock; the manager may do all of it and set stock policies.

    `roles_sync` creates the new action permissions (`inventory.hold_stock`,
    `inventory.set_safety_stock`, `inventory.receive_purchase_order`) and gives every role
    that views inventory the view permissions of its new models.
    """

    dependencies = [
        ("backoffice", "0004_roles_read_shipments"),
        ("inventory", "0005_stock_buckets_policies_backorders_purchase_orders"),
    ]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
