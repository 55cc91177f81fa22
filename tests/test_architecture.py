"""Structural rules of design.md that a reader relies on, checked so they cannot drift."""

import ast

import pytest

from conftest import PROJECT_DIR

APPS = ["outbox", "audit", "catalog", "inventory", "orders", "payments", "storefront"]


@pytest.mark.parametrize("app", APPS)
def test_signals_module_imports_only_django_dispatch(app):
    tree = ast.parse((PROJECT_DIR / app / "signals.py").read_text())

    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }

    assert imported <= {"django.dispatch"}


@pytest.mark.parametrize("app", APPS)
def test_nothing_imports_a_receivers_module(app):
    importers = [
        path.relative_to(PROJECT_DIR)
        for path in PROJECT_DIR.glob("*/**/*.py")
        if ".venv" not in path.parts
        and path.name != "apps.py"
        and f"{app}.receivers" in path.read_text()
        and path != PROJECT_DIR / "tests" / "test_architecture.py"
    ]

    assert importers == []
