"""Work after a commit that must never fail the caller whose work it follows."""

from collections.abc import Callable
from functools import partial
from typing import Any

from django.db import transaction


def on_commit_robust(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
    """Run `func(*args, **kwargs)` after the current transaction commits; a failure is logged
    (`django.db.backends`), never raised, and the transaction's later callbacks still run.

    `transaction.on_commit(partial(...), robust=True)` alone does not do that on Django 5.2: it
    names a failed callback by its `__qualname__`, which a partial lacks, so the failure
    surfaces as an AttributeError from the COMMIT, to a caller whose work is saved, and the
    callbacks after it are dropped. The partial here carries its function's name.
    """
    callback = partial(func, *args, **kwargs)
    callback.__qualname__ = getattr(func, "__qualname__", repr(func))
    transaction.on_commit(callback, robust=True)
