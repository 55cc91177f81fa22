"""Fixtures of every admin test."""

import pytest


@pytest.fixture(autouse=True)
def fast_passwords(settings) -> None:
    """Hash test passwords cheaply: the default hasher costs half a second per user."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
