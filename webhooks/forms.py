"""Forms of the webhooks admin; the services check every value again."""

from django import forms

from webhooks.models import OPT_IN_EVENTS, EventType, WebhookEndpoint
from webhooks.services import EndpointInvalid, endpoint_events_clean, endpoint_url_check


class WebhookEndpointForm(forms.ModelForm):
    """An endpoint's URL, events, description and state; the secret is never a form field."""

    url = forms.URLField(
        max_length=WebhookEndpoint._meta.get_field("url").max_length,
        assume_scheme="https",
        help_text="https://… reachable from the internet; private, loopback and link-local "
        "addresses are refused (see WEBHOOK_ALLOWED_NETWORKS).",
    )
    events = forms.MultipleChoiceField(
        choices=EventType.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="stock.changed is sent only to endpoints that tick it (one event per variant "
        "every 30 seconds at most while its stock moves).",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("url", "description", "events", "active")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is None:
            self.initial.setdefault(
                "events", [value for value in EventType.values if value not in OPT_IN_EVENTS]
            )

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        if self.instance.pk is None or "url" in self.changed_data:
            try:
                endpoint_url_check(url)
            except EndpointInvalid as error:
                raise forms.ValidationError(str(error), code=error.code) from error
        return url

    def clean_events(self) -> list[str]:
        try:
            return endpoint_events_clean(self.cleaned_data["events"])
        except EndpointInvalid as error:
            raise forms.ValidationError(str(error), code=error.code) from error


class ResendSinceForm(forms.Form):
    since = forms.DateTimeField(
        label="Resend events since",
        help_text="UTC, e.g. 2026-03-01 08:00. Every recorded event of a type the endpoint "
        "subscribes to from then on is sent again, as a new delivery.",
    )
