from django.db import migrations


def create_roles(apps, schema_editor):
    from backoffice.roles import roles_sync

    roles_sync(apps=apps)


class Migration(migrations.Migration):
    """The warehouse, support and manager groups (backoffice/roles.py says what each may do)."""

    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("audit", "0001_initial"),
        ("catalog", "0001_initial"),
        ("inventory", "0001_initial"),
        ("orders", "0001_initial"),
        ("payments", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
