from django.db import migrations


def sync_roles(apps, schema_editor):
    from backoffice.roles import roles_sync

    roles_sync(apps=apps)


class Migration(migrations.Migration):
    """Roles that read every model of orders read its shipments and their lines too.

    The warehouse and support roles view all of orders' models; `roles_sync` gives them the
    view permissions of the shipment models added since (the order page lists shipments).
    """

    dependencies = [
        ("backoffice", "0003_roles_reviews"),
        ("orders", "0005_shipments_and_partial_cancellation"),
    ]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
