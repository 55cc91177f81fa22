from django.db import migrations


def sync_roles(apps, schema_editor):
    from backoffice.roles import roles_sync

    roles_sync(apps=apps)


class Migration(migrations.Migration):
    """The manager registers webhook endpoints and resends deliveries; no other role sees them."""

    dependencies = [
        ("backoffice", "0001_roles"),
        ("webhooks", "0001_initial"),
    ]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
