from django.db import migrations


def sync_roles(apps, schema_editor):
    from backoffice.roles import roles_sync

    roles_sync(apps=apps)


class Migration(migrations.Migration):
    """Support and the manager may resolve orders flagged for attention, and read (and, with
    `payments.issue_refund`, refund or resolve) the unmatched payments."""

    dependencies = [
        ("stockwire", "0003_roles_task_rerun"),
        ("orders", "0004_order_invariants_and_lifetime_counters"),
        ("payments", "0004_unmatched_payment"),
    ]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
