"""The channel layer's group names: who hears which push."""

# Staff with access to orders: new orders and orders flagged for attention.
STAFF_ORDERS = "live.staff.orders"
# Staff with access to stock: variants falling through their low-stock threshold.
STAFF_STOCK = "live.staff.stock"


def customer_group(customer_id: int) -> str:
    """Every socket of one customer: the events of their orders, and nobody else's."""
    return f"live.customer.{customer_id}"


def variant_group(variant_id: int) -> str:
    """Every socket subscribed to one SKU's availability."""
    return f"live.stock.{variant_id}"


def user_group(user_id: int) -> str:
    """Every authenticated socket of one user: told to check again at once that the user may
    still hold them (a log-out, a user or permission change)."""
    return f"live.user.{user_id}"
