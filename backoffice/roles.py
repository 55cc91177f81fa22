"""Staff roles: which groups exist and what each may do in the admin.

The admin's actions check the custom permissions below (`orders.ship_order`, …), so a role is
exactly its list here. `roles_sync` is idempotent and brings the groups in line with this
module: `backoffice.0001_roles` runs it, and so does the test database after a flush. Editing
this module changes no database: a change to a role ships with a new backoffice migration that
calls `roles_sync` again, depending on the latest migration of every app whose permissions it
names.
"""

from django.apps import apps as global_apps
from django.apps.registry import Apps
from django.contrib.auth.management import create_permissions

# Permissions the admin's actions check that no model declares: they guard operations done
# through services, not rows edited in a form. (app_label, model) -> [(codename, name)].
ACTION_PERMISSIONS: dict[tuple[str, str], list[tuple[str, str]]] = {
    ("inventory", "stocklevel"): [
        ("receive_stock", "Can receive stock"),
        ("adjust_stock", "Can adjust stock"),
        ("hold_stock", "Can move stock to and from unavailable"),
        ("set_safety_stock", "Can set safety stock"),
    ],
    ("inventory", "purchaseorder"): [
        ("receive_purchase_order", "Can receive and close purchase orders"),
    ],
    ("orders", "order"): [
        ("ship_order", "Can ship orders"),
        ("cancel_order", "Can cancel orders"),
        ("deliver_order", "Can mark orders delivered"),
        ("resolve_order", "Can resolve orders that need attention"),
    ],
    ("payments", "refund"): [("issue_refund", "Can issue refunds")],
    ("outbox", "outboxmessage"): [("relay_outbox", "Can relay outbox requests at once")],
    ("outbox", "taskfailure"): [("rerun_task", "Can re-run failed tasks")],
}

# `outbox` included: staff see the requests the broker has not taken and the tasks that failed
# for good; support and the manager re-run a failed task (`outbox.rerun_task`); the manager
# acknowledges failures by deleting them, and relays requests at once ("Relay now",
# `outbox.relay_outbox`). `webhooks` is the manager's alone (no other role reads it): an
# endpoint decides where the shop's orders and customers' addresses are sent. `reviews`:
# support and the manager work the moderation queue (`reviews.moderate_review`, a permission
# the Review model declares); the manager may also delete a review.
SHOP_APPS = ("audit", "catalog", "inventory", "orders", "outbox", "payments", "reviews", "webhooks")

# role -> (apps whose every model it may view, apps it may fully manage, action permissions)
ROLES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "warehouse": (
        ("catalog", "inventory", "orders"),
        (),
        (
            "inventory.receive_stock",
            "inventory.adjust_stock",
            "inventory.hold_stock",
            "inventory.set_safety_stock",
            "inventory.add_purchaseorder",
            "inventory.receive_purchase_order",
            "orders.ship_order",
            "orders.deliver_order",
        ),
    ),
    "support": (
        ("audit", "catalog", "inventory", "orders", "outbox", "payments", "reviews"),
        (),
        (
            "orders.cancel_order",
            "orders.resolve_order",
            "payments.issue_refund",
            "outbox.rerun_task",
            "reviews.moderate_review",
        ),
    ),
    "manager": (
        (),
        SHOP_APPS,
        tuple(
            f"{app_label}.{codename}"
            for (app_label, _model), permissions in ACTION_PERMISSIONS.items()
            for codename, _name in permissions
        ),
    ),
}


def roles_sync(*, apps: Apps = global_apps) -> None:
    """Create the permissions and the role groups, and set each group to exactly its role.

    Permissions are normally made after `migrate` (post_migrate), too late for a data
    migration, so they are created here first; `apps` is the migration's historical registry.
    """
    for app_config in apps.get_app_configs():
        # Historical app configs have no models module, which create_permissions skips.
        models_module = getattr(app_config, "models_module", None)
        app_config.models_module = models_module or True
        try:
            create_permissions(app_config, apps=apps, verbosity=0)
        finally:
            app_config.models_module = models_module
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    for (app_label, model), permissions in ACTION_PERMISSIONS.items():
        content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
        for codename, name in permissions:
            Permission.objects.get_or_create(
                content_type=content_type, codename=codename, defaults={"name": name}
            )
    for role, (viewed_apps, managed_apps, actions) in ROLES.items():
        wanted = Permission.objects.filter(
            content_type__app_label__in=viewed_apps, codename__startswith="view_"
        ) | Permission.objects.filter(content_type__app_label__in=managed_apps)
        for action in actions:
            app_label, codename = action.split(".")
            wanted |= Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            )
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(wanted.distinct())
