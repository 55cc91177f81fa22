"""The demo commands create accounts whose passwords the README publishes: with DEBUG off they
refuse, create nothing and exit non-zero, unless forced."""

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from catalog.models import Product

pytestmark = pytest.mark.django_db

STAFF = ["--email", "staff@stockwire.example", "--password", "stockwire-demo"]


@pytest.mark.parametrize(("command", "args"), [("seed_demo", []), ("demo_staff", STAFF)])
def test_demo_commands_refuse_with_debug_off(settings, command, args):
    # given
    settings.DEBUG = False

    # when
    with pytest.raises(CommandError) as refusal:
        call_command(command, *args, stdout=io.StringIO())

    # then
    assert str(refusal.value) == (
        f"DEBUG is off, so this looks like a real deployment, and {command} would create "
        "accounts whose passwords are published in the README. Run it in development, or add "
        "--force if this really is a throwaway demo."
    )
    assert User.objects.count() == 0
    assert Product.objects.count() == 0


def test_demo_staff_with_debug_off_and_force_creates_the_superuser(settings):
    # given
    settings.DEBUG = False

    # when
    call_command("demo_staff", *STAFF, "--force", stdout=io.StringIO())

    # then
    user = User.objects.get()
    assert (user.username, user.is_staff, user.is_superuser) == (
        "staff@stockwire.example",
        True,
        True,
    )
    assert user.check_password("stockwire-demo")
