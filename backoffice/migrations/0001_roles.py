from django.db import migrations


def sync_roles(apps, schema_editor):
    from backoffice.roles import roles_sync

    roles_sync(apps=apps)


class Migration(migrations.Migration):
    """The warehouse, support and manager groups (backoffice/roles.py says what each may do).

    A database migrated before the back office had its own app already has the groups, from the
    migrations the project's configuration app (label `stockwire`) used to hold; `roles_sync` is
    idempotent, so running it here leaves such a database's groups as the module defines them.
    """

    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("audit", "0001_initial"),
        ("catalog", "0004_product_image_size_limit"),
        ("inventory", "0003_sentalert_claim_then_mark"),
        ("orders", "0004_order_invariants_and_lifetime_counters"),
        ("outbox", "0004_task_failure_rerun"),
        ("payments", "0004_unmatched_payment"),
    ]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
