"""The signal map (docs/architecture.md) is true: every live receiver is listed, every listed
one is live."""

import importlib
import inspect
import re
import weakref

from celery import signals as celery_signals
from celery.utils.dispatch import Signal as CelerySignal
from django.apps import apps
from django.contrib.auth import signals as auth_signals
from django.core import signals as request_signals
from django.db.backends import signals as backend_signals
from django.db.models import signals as model_signals
from django.dispatch import Signal

from conftest import PROJECT_DIR, PROJECT_PACKAGES

SIGNAL_MAP = PROJECT_DIR / "docs" / "architecture.md"

WHERE = {"in the transaction", "on commit", "no transaction"}


def _signals_by_name() -> dict[str, Signal]:
    found: dict[str, Signal] = {}
    modules = [model_signals, backend_signals, request_signals, auth_signals, celery_signals] + [
        importlib.import_module(f"{package}.signals")
        for package in PROJECT_PACKAGES
        if (PROJECT_DIR / package / "signals.py").is_file()
    ]
    for module in modules:
        for name, value in vars(module).items():
            if isinstance(value, Signal | CelerySignal):
                found.setdefault(name, value)
    return found


def _sender_labels() -> dict[int, str]:
    labels = {id(model): model._meta.label for model in apps.get_models(include_auto_created=True)}
    labels[id(None)] = "any"
    return labels


def _live_rows() -> set[tuple[str, str, str]]:
    labels = _sender_labels()
    rows = set()
    for name, signal in _signals_by_name().items():
        for entry in signal.receivers:
            lookup_key, reference = entry[0], entry[1]
            receiver = reference() if isinstance(reference, weakref.ReferenceType) else reference
            # Celery connects promises of its own (no __qualname__): never ours.
            path = f"{receiver.__module__}.{getattr(receiver, '__qualname__', '?')}"
            if not path.startswith(tuple(f"{package}." for package in PROJECT_PACKAGES)):
                continue
            sender = labels.get(lookup_key[1], "?")
            rows.add((name, sender, path))
    return rows


def _map_rows() -> list[dict[str, str]]:
    text = SIGNAL_MAP.read_text()
    section = text.split("\n## Signal map\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        if len(cells) != 5 or cells[0] in {"signal", "---"}:
            continue
        rows.append(
            dict(zip(["signal", "sender", "receiver", "effect", "where"], cells, strict=True))
        )
    return rows


def _is_model_signal(name: str) -> bool:
    return isinstance(getattr(model_signals, name, None), Signal)


def test_signal_map_matches_the_live_receiver_registry():
    documented = {
        (
            row["signal"],
            row["sender"] if _is_model_signal(row["signal"]) else "any",
            row["receiver"],
        )
        for row in _map_rows()
    }
    live = {
        (name, sender if _is_model_signal(name) else "any", receiver)
        for name, sender, receiver in _live_rows()
    }

    assert sorted(live - documented) == [], "connected but missing from the signal map"
    assert sorted(documented - live) == [], "in the signal map but not connected"


def test_every_signal_map_row_says_where_it_runs():
    assert [row for row in _map_rows() if row["where"] not in WHERE] == []


def _sends(function, signal_name: str, *, helpers: int = 2) -> bool:
    """Whether `function` sends the signal itself or through a function of its module it calls
    (a helper that sends with the arguments every sender owes the receivers), or one it calls."""
    source = inspect.getsource(function)
    if f"{signal_name}.send" in source:
        return True
    scope = inspect.unwrap(function).__globals__
    called = {scope.get(name) for name in re.findall(r"\b(\w+)\(", source)}
    return helpers > 0 and any(
        _sends(helper, signal_name, helpers=helpers - 1)
        for helper in called
        if inspect.isfunction(helper) and helper is not function
    )


def test_custom_signal_senders_in_the_map_really_send_them():
    custom = [row for row in _map_rows() if not _is_model_signal(row["signal"])]
    for row in custom:
        if row["sender"] == "any":
            continue
        for sender in re.split(r",\s*", row["sender"]):
            module_name, _, function_name = sender.rpartition(".")
            function = getattr(importlib.import_module(module_name), function_name)
            assert _sends(function, row["signal"]), sender
