"""The admin's log-in form, under the same limits as the API's log-in.

Without them a script could try passwords on a staff account, the one that can refund and
cancel, as fast as the server answers. Attempts count in the API's buckets (per client address
and per account, the account found as the API finds it), so switching doors, or typing the
username where the API took the e-mail, buys no extra guesses. With the cache down the limits let
every attempt through, as the API's do: staff are never locked out by an outage.
"""

from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from core import throttle
from orders.selectors import account_ids
from orders.services import user_email_normalise


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    """Refuse a log-in attempt beyond the limits before its password is checked."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "throttled": "Too many log-in attempts. Try again in %(seconds)s seconds.",
    }

    def clean(self) -> dict:
        username = self.cleaned_data.get("username")
        if username is not None and self.cleaned_data.get("password"):
            try:
                throttle.throttle_attempt(
                    request=self.request,
                    account=user_email_normalise(username),
                    limits=throttle.LOGIN,
                    account_ids=account_ids(identifier=username),
                )
            except throttle.Throttled as refusal:
                raise ValidationError(
                    self.error_messages["throttled"],
                    code="throttled",
                    params={"seconds": refusal.retry_after},
                ) from refusal
        return super().clean()
