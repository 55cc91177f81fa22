from django.db import migrations


def sync_roles(apps, schema_editor):
    from backoffice.roles import roles_sync

    roles_sync(apps=apps)


class Migration(migrations.Migration):
    """Support may read the outbox and the failed tasks; the manager may also act on them."""

    dependencies = [
        ("stockwire", "0001_roles"),
        ("outbox", "0002_task_failure"),
    ]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
