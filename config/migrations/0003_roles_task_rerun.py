from django.db import migrations


def sync_roles(apps, schema_editor):
    from backoffice.roles import roles_sync

    roles_sync(apps=apps)


class Migration(migrations.Migration):
    """Support and the manager may re-run a task that failed for good."""

    dependencies = [
        ("stockwire", "0002_roles_outbox"),
        ("outbox", "0004_task_failure_rerun"),
    ]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
