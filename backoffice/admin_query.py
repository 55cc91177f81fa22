"""Query strings the admin's own views cannot answer, refused before they run.

Django's admin passes a page's query string to the database as it comes: a list filter's
value, a date hierarchy's year, an add page's initial value for an autocompleted relation.
Some values no query can hold fail deep inside Django with a 500 instead of the admin's
"invalid lookup" page: a NUL character (PostgreSQL's text refuses it), a year outside
1-9999 (Python's dates end there, and so do the date lookups' bounds), an autocompleted
relation's key that is not a key (its widget looks the value up to show it). Those are
refused here with a 400; every other odd value still gets Django's own handling.
"""

from django.contrib.admin import ModelAdmin
from django.core.exceptions import ValidationError
from django.http import QueryDict

# The parts of a date a lookup may name (`placed_at__year`, `created_at__month__gte`) and the
# values Python's dates hold.
DATE_PARTS = {"year": (1, 9999), "month": (1, 12), "day": (1, 31)}


def query_refusal(query: QueryDict, *, model_admin: ModelAdmin | None) -> str | None:
    """Why the admin cannot answer a page with this query string, or None when it can."""
    for key, values in query.lists():
        if "\x00" in key or any("\x00" in value for value in values):
            return "The address holds a NUL character."
        for part in key.split("__")[1:]:
            if part in DATE_PARTS:
                low, high = DATE_PARTS[part]
                if not all(_whole_number_within(value, low, high) for value in values):
                    return f"{key} must be a whole number from {low} to {high}."
    if model_admin is None:
        return None
    for name in model_admin.autocomplete_fields:
        if name in query:
            key_field = model_admin.model._meta.get_field(name).target_field
            try:
                for value in query[name].split(","):
                    key_field.to_python(value)
            except ValidationError:
                return f"{name} must name a {key_field.model._meta.verbose_name} by its key."
    return None


def _whole_number_within(value: str, low: int, high: int) -> bool:
    return value.isascii() and value.isdigit() and low <= int(value) <= high
