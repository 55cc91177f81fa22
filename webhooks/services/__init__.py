"""Write operations of the webhooks app, split by entity; import them from here."""

from webhooks.services.deliveries import (
    MAX_ATTEMPTS,
    RETRY_SCHEDULE,
    ResendRefused,
    deliveries_dispatch,
    delivery_attempt,
    delivery_resend,
    endpoint_disabled_notice_send,
    endpoint_resend_since,
    signature_header,
)
from webhooks.services.endpoints import (
    EndpointInvalid,
    endpoint_create,
    endpoint_events_clean,
    endpoint_secret_rotate,
    endpoint_update,
    endpoint_url_check,
)
from webhooks.services.events import changes_emit, changes_mark, event_emit, events_prune

__all__ = [
    "MAX_ATTEMPTS",
    "RETRY_SCHEDULE",
    "EndpointInvalid",
    "ResendRefused",
    "changes_emit",
    "changes_mark",
    "deliveries_dispatch",
    "delivery_attempt",
    "delivery_resend",
    "endpoint_create",
    "endpoint_disabled_notice_send",
    "endpoint_events_clean",
    "endpoint_resend_since",
    "endpoint_secret_rotate",
    "endpoint_update",
    "endpoint_url_check",
    "event_emit",
    "events_prune",
    "signature_header",
]
