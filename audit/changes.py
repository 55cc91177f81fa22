"""An audit entry's `{field: [before, after]}` diff as people read it, wherever it is shown."""


def change_pairs(changes: dict) -> list[tuple[str, object, object]]:
    """`(field, before, after)` of an entry's `{field: [before, after]}` diff."""
    return [
        (field, *(value if isinstance(value, list) and len(value) == 2 else (None, value)))
        for field, value in changes.items()
    ]


def changes_text(changes: dict) -> str:
    """The diff on one line: `status: paid → shipped; tracking_number:  → TRK-1`."""
    return "; ".join(
        f"{field}: {before} → {after}" for field, before, after in change_pairs(changes)
    )
