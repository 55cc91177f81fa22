"""Form fields of the catalog's admin pages."""

from typing import Any

from django import forms
from django.forms.fields import InvalidJSONInput

from core.json_input import unstorable_text


class StorableJSONField(forms.JSONField):
    """A JSON field whose refused input is shown again as it was typed.

    Django's JSON field shows a bound value by dumping it again, without escaping: an unpaired
    surrogate typed as `\\ud800` (which `attributes_validate` refuses) would then be written
    into the page, which no UTF-8 answer can hold. What was typed is plain text, so it is
    shown as typed instead.
    """

    def bound_data(self, data: Any, initial: Any) -> Any:
        value = super().bound_data(data, initial)
        if not isinstance(value, InvalidJSONInput) and unstorable_text(value) is not None:
            return InvalidJSONInput(data)
        return value
