from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "inventory"

    def ready(self) -> None:
        from audit.registry import audit_register
        from inventory import receivers  # noqa: F401
        from inventory.models import Warehouse

        # Stock levels are audited by the services that move them (receipts and adjustments),
        # not per save: a reservation is not an audit event, and the ledger records it.
        audit_register(Warehouse)
