from django.db import migrations


def sync_roles(apps, schema_editor):
    from backoffice.roles import roles_sync

    roles_sync(apps=apps)


class Migration(migrations.Migration):
    """Support and the manager read and moderate reviews; the manager may delete one."""

    dependencies = [
        ("backoffice", "0002_roles_webhooks"),
        ("reviews", "0001_initial"),
    ]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
