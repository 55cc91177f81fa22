"""The project's management commands as an operator meets them when the database is down."""

import pytest

from tests.embedded_helpers import embedded_env, manage

# A port nothing listens on: every connection is refused at once.
DATABASE_DOWN = "postgres://postgres@127.0.0.1:1/nothing"


@pytest.mark.parametrize(
    "args",
    [
        ("inventory_verify",),
        ("orders_verify",),
        ("reconcile_counters",),
        ("reconcile_ratings",),
        ("outbox_relay",),
        ("import_catalog", "--no-progress", "{file}"),
        ("pay_order", "SW-AAAAAAAA"),
        ("seed_demo",),
    ],
    ids=lambda args: args[0],
)
def test_a_command_says_in_one_line_that_the_database_does_not_answer(args, tmp_path):
    # given
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("sku,product,variant,category,price,warehouse,on_hand\nA,B,,C,1.00,main,1\n")
    env = embedded_env(tmp_path, DATABASE_URL=DATABASE_DOWN, DEBUG="True")

    # when
    done = manage(*(arg.format(file=catalog) for arg in args), env=env)

    # then
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "the database does not answer" in done.stderr
