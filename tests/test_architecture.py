"""The layer rules `make lint` enforces cover the whole tree, and its own contract type bites."""

import sys
import tomllib

import grimp
import pytest
from django.conf import settings
from importlinter.domain.contract import ContractCheck

from conftest import PROJECT_DIR, PROJECT_PACKAGES
from lint.contracts import ImportsOnlyContract

# Packages that are no part of the shipped project: the tests, the benchmarks, the lint rules.
NOT_LINTED = {"tests", "bench", "lint"}


def _linter_config() -> dict:
    return tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["tool"]["importlinter"]


def test_the_linter_checks_every_package_of_the_tree():
    on_disk = {
        path.parent.name
        for path in PROJECT_DIR.glob("*/__init__.py")
        if path.parent.name not in NOT_LINTED
    }

    assert sorted(PROJECT_PACKAGES) == sorted(on_disk)


def test_every_installed_app_of_the_project_is_a_linted_package():
    ours = {
        entry.split(".")[0]
        for entry in settings.INSTALLED_APPS
        if (PROJECT_DIR / entry.split(".")[0]).is_dir()
    }

    assert ours <= set(PROJECT_PACKAGES)


def test_every_package_has_its_place_in_the_layers():
    layers = next(c for c in _linter_config()["contracts"] if c["type"] == "layers")["layers"]
    placed = {
        name.strip().strip("()") for layer in layers for name in layer.split("|") if name.strip()
    }

    assert set(PROJECT_PACKAGES) <= placed


def _signals_contract_check(tmp_path, monkeypatch, source: str) -> ContractCheck:
    package = tmp_path / "sample"
    (package / "app").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "app" / "__init__.py").write_text("")
    (package / "app" / "signals.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [name for name in sys.modules if name.split(".")[0] == "sample"]:
        monkeypatch.delitem(sys.modules, name)
    contract = ImportsOnlyContract(
        name="signals",
        session_options={"root_packages": ["sample"]},
        contract_options={"modules": ["sample.*.signals"], "allowed": ["django.dispatch"]},
    )
    return contract.check(grimp.build_graph("sample", cache_dir=None), verbose=False)


def test_signals_contract_keeps_a_module_that_imports_only_django_dispatch(tmp_path, monkeypatch):
    # when
    check = _signals_contract_check(
        tmp_path, monkeypatch, "from django.dispatch import Signal\n\nthing_done = Signal()\n"
    )

    # then
    assert check.kept


@pytest.mark.parametrize(
    ("source", "imported"),
    [
        ("from django.db import models\n", "django.db"),
        ("from .models import Thing\n", "sample.app.models"),
        ("def later():\n    import sample.app.models\n", "sample.app.models"),
    ],
)
def test_signals_contract_names_any_other_import(tmp_path, monkeypatch, source, imported):
    # when
    check = _signals_contract_check(tmp_path, monkeypatch, source)

    # then
    assert not check.kept
    assert [breach[:2] for breach in check.metadata["breaches"]] == [
        ("sample.app.signals", imported)
    ]
