from django.contrib.admin.apps import AdminConfig


class StockwireAdminConfig(AdminConfig):
    """The admin app with Stockwire's site (dashboard index) as `admin.site`.

    Kept apart from `backoffice.admin_site` because INSTALLED_APPS imports this module before any
    model is loaded, while the site module may import models.
    """

    default_site = "backoffice.admin_site.StockwireAdminSite"
