"""Domain errors of the orders app; each has a stable `code` the API turns into a problem."""


class OrderError(Exception):
    code = "order_error"


class InvalidTransition(OrderError):
    """The order is not in a status this action may start from (or a concurrent action won)."""

    code = "invalid_transition"

    def __init__(self, *, number: str, action: str, allowed: tuple[str, ...]) -> None:
        self.number = number
        self.action = action
        self.allowed = allowed
        super().__init__(
            f"order {number} cannot be {action}: it is no longer {' or '.join(allowed)}"
        )


class UnknownSku(OrderError):
    code = "unknown_sku"

    def __init__(self, skus: list[str]) -> None:
        self.skus = skus
        super().__init__(f"unknown or inactive SKU: {', '.join(skus)}")


class InvalidOrder(OrderError):
    code = "invalid_order"


class NotFlagged(OrderError):
    """The order needs no attention (never flagged, or resolved already): nothing to resolve."""

    code = "not_flagged"

    def __init__(self, *, number: str) -> None:
        self.number = number
        super().__init__(f"order {number} needs no attention")


class LinesOutOfStock(OrderError):
    """Some lines cannot be reserved; `lines` holds `{sku, requested, available}` per short SKU."""

    code = "out_of_stock"

    def __init__(self, lines: list[dict]) -> None:
        self.lines = lines
        super().__init__(
            "not enough stock for "
            + ", ".join(
                f"{line['sku']} ({line['available']} of {line['requested']})" for line in lines
            )
        )


class UnitsExceeded(OrderError):
    """More units asked for than some lines have left to ship, cancel or return (or than the
    warehouse named holds for the order); nothing changed. `lines` holds `{sku, requested,
    available}` per line short; `code` says which: `over_shipment`, `over_cancellation` or
    `over_return`."""

    def __init__(self, *, code: str, verb: str, lines: list[dict]) -> None:
        self.code = code
        self.lines = lines
        super().__init__(
            f"cannot {verb} "
            + ", ".join(
                f"{line['requested']} of {line['sku']} (only {line['available']})" for line in lines
            )
        )


class ShippingRefundedAlready(OrderError):
    """The order's shipping charge was refunded with an earlier return."""

    code = "shipping_refunded_already"

    def __init__(self, *, number: str) -> None:
        self.number = number
        super().__init__(f"the shipping charge of order {number} was refunded already")
