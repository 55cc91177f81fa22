from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    """The staff's back office: the admin site's dashboard, the staff roles, demo staff."""

    name = "backoffice"
