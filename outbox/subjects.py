"""What a requested task is about, read from its keyword arguments, for the outbox's lists.

A task takes ids (`order_id=5`), which say nothing to staff. The apps whose tasks take them
register here, from their admin modules, what each keyword names (`order_id` is an order,
named by its number); the outbox cannot import those apps, as they sit above it. The lists
then read each kind of row once per page: one query per kind, never one per task.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db.models import Model


@dataclass(frozen=True)
class TaskSubject:
    """The keyword `key` of a task holds the id of a row of `model`, named by `name(row)`.

    `related`: what `name` and `page` read of other tables (`select_related`), so naming
    costs no query. `page(row)`: the row whose admin page the name links to (an image's
    product), the row itself by default.
    """

    key: str
    model: type[Model]
    name: Callable[[Model], str] = str
    related: tuple[str, ...] = field(default=())
    page: Callable[[Model], Model] | None = None


@dataclass(frozen=True)
class Subject:
    """One thing a task is about: a named row (with the row whose page tells more; None when
    it is gone), or a plain value. `unnamed` says which row without its name ("webhook
    delivery 17"), for a reader who may not read that row (its name may be what they may not
    see, a webhook endpoint's URL)."""

    label: str
    page: Model | None = None
    unnamed: str = ""


_subjects: dict[str, TaskSubject] = {}


def task_subject_register(subject: TaskSubject) -> None:
    """Name the rows the keyword `subject.key` holds; registering a key again replaces it."""
    _subjects[subject.key] = subject


def task_subjects(kwargs_of: Iterable[dict]) -> list[list[Subject]]:
    """What each task is about, given each task's keyword arguments, in the same order.

    A registered keyword becomes its row ("order SW-7K2M9Q4D"); another keyword with a short
    plain value follows as it is ("kind: shipped"); nested values (an e-mail's context) are
    left out. One query per registered keyword met, whatever the number of tasks.
    """
    kwargs_list = [kwargs if isinstance(kwargs, dict) else {} for kwargs in kwargs_of]
    wanted: dict[str, set] = {}
    for kwargs in kwargs_list:
        for key, value in kwargs.items():
            if key in _subjects and _is_id(value):
                wanted.setdefault(key, set()).add(value)
    rows = {
        key: _subjects[key]
        .model._default_manager.select_related(*_subjects[key].related)
        .in_bulk(list(ids))
        for key, ids in wanted.items()
    }
    return [_subjects_of(kwargs, rows) for kwargs in kwargs_list]


def _subjects_of(kwargs: dict, rows: dict[str, dict]) -> list[Subject]:
    """The rows named first, then the plain values: JSON columns need not keep the keys'
    order (PostgreSQL's jsonb sorts them)."""
    found = []
    named = sorted(kwargs.items(), key=lambda item: item[0] not in _subjects)
    for key, value in named:
        subject = _subjects.get(key)
        if subject is not None and _is_id(value):
            row = rows.get(key, {}).get(value)
            noun = subject.model._meta.verbose_name
            label = f"{noun} {subject.name(row)}" if row else f"{noun} {value} (gone)"
            page = (subject.page or _itself)(row) if row else None
            found.append(Subject(label=label, page=page, unnamed=f"{noun} {value}"))
        elif isinstance(value, int | str | bool) and len(str(value)) <= 40:
            found.append(Subject(label=f"{key.replace('_', ' ')}: {value}"))
    return found


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _itself(row: Model) -> Model:
    return row
