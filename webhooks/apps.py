from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks (outbound)"

    def ready(self) -> None:
        from audit.registry import audit_register
        from webhooks import receivers  # noqa: F401
        from webhooks.models import WebhookEndpoint

        # Who pointed the shop's events where, and when; the signing secrets stay out of
        # the trail (an audit entry is read by more staff than the endpoint itself).
        audit_register(
            WebhookEndpoint,
            exclude=("secret", "previous_secret", "previous_secret_expires_at", "failing_since"),
        )
