from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    """The staff's back office: the admin site, its log-in and dashboard, roles, demo staff."""

    name = "backoffice"
