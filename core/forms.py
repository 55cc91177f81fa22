"""Form behaviour shared by the admin's pages of several apps."""

from django import forms

SHOWN_FIELD = "shown"


class ShownStateForm(forms.Form):
    """A form that acts on figures it showed (units left to ship, to receive) and carries
    them: a post made against other figures is refused instead of acting again on what is
    left. That is the same form sent twice (a double click, the back button) or a second
    tab's after the first acted; either would pass the limits, checked against what is left.

    A subclass calls `state_shown(state)` with a text naming the figures as they are now. A
    post without them (not from the page: a script) is checked by the limits alone.
    """

    changed_message = "This changed since the page was shown; check the figures and submit again."

    def state_shown(self, state: str) -> None:
        self.fields[SHOWN_FIELD] = forms.CharField(
            widget=forms.HiddenInput, initial=state, required=False
        )

    def clean(self) -> dict:
        cleaned = super().clean()
        now = self.fields[SHOWN_FIELD].initial
        shown = cleaned.get(SHOWN_FIELD)
        if shown and shown != now:
            # The form shown again carries the figures as they are now, to submit on them.
            self.data = self.data.copy()
            self.data[self.add_prefix(SHOWN_FIELD)] = now
            raise forms.ValidationError(self.changed_message)
        return cleaned
