"""Push what the apps below announce to the sockets that may hear it, once it is committed.

Each receiver only registers a `transaction.on_commit` callback (no query in the sender's
transaction): a rollback drops it and nothing is pushed. The callback reads the state as
committed (an order's: one query; a SKU's is read by the publisher once per coalescing window)
and hands the message to `live.publish.publisher`, which sends it on an event loop and never
holds the request; a process whose pushes could reach nobody (the in-memory layer without a
socket in this process) skips even the read. The callbacks of one commit first ask which of
their groups some socket listens to (`live.following`: one Redis round trip for all of them),
then read and push for those only: a checkout of a customer with no socket open, of SKUs
nobody follows, while no staff member watches, costs that round trip and nothing else.
"""

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import m2m_changed, post_save
from django.dispatch import receiver

from core.commit import on_commit_robust
from inventory.signals import stock_changed, stock_low
from live import following
from live.consumers import as_text
from live.groups import STAFF_ORDERS, STAFF_STOCK, customer_group, user_group, variant_group
from live.publish import publisher
from live.selectors import linked_ids, order_state, stock_rows, user_ids_in_roles
from live.services import stock_states_pushed
from orders.signals import (
    order_cancelled,
    order_delivered,
    order_flagged,
    order_lines_allocated,
    order_lines_cancelled,
    order_placed,
    order_resolved,
    order_shipped,
)
from payments.signals import payment_received, refund_issued
from storefront.signals import token_revoked


def _on_commit(callback: Any, groups: Iterable[str], /, **kwargs: Any) -> None:
    """After the commit, `callback(question, **kwargs)`: `question` tells which of `groups`
    (the push's, asked together with the commit's other pushes') some socket listens to."""
    if publisher.reaches_anyone():
        question = following.question(groups)
        on_commit_robust(callback, question, **kwargs)


def _order_groups(customer_id: int, staff: bool) -> list[str]:
    customer = customer_group(customer_id)
    return [customer, STAFF_ORDERS] if staff else [customer]


def _push_order(order: Any, /, *, staff: bool = False, **kwargs: Any) -> None:
    """After the commit, `_order_push` for `order` (its customer named now: no query later)."""
    _on_commit(
        _order_push,
        _order_groups(order.customer_id, staff),
        order_id=order.pk,
        customer_id=order.customer_id,
        staff=staff,
        **kwargs,
    )


def _order_push(
    question: following.Question,
    /,
    *,
    order_id: int,
    customer_id: int,
    event: str,
    staff: bool = False,
    **details: Any,
) -> None:
    """Send the order's state now, as the `event` message, to its customer (and staff), if a
    socket of theirs listens."""
    customer = customer_group(customer_id)
    listening = question.followed(_order_groups(customer_id, staff))
    if not listening:
        return
    found = order_state(order_id=order_id)
    if found is None:
        return
    state, attention_reason = found
    message = {"type": "order", "event": event, **state.message(), **details}
    if customer in listening:
        publisher.push(customer, {"type": "live.push", "text": as_text(message)})
    if STAFF_ORDERS in listening:
        staff_message = {**message, "attention_reason": attention_reason}
        publisher.push(STAFF_ORDERS, {"type": "live.push", "text": as_text(staff_message)})


def _stock_push(question: following.Question, /, *, variant_ids: list[int]) -> None:
    """Have the publisher send the followed variants' availability (read once per coalescing
    window, not here: `live.publish`); a variant no socket follows costs one question to Redis
    for the commit (`live.following`)."""
    listening = question.followed(map(variant_group, variant_ids))
    followed = sorted(vid for vid in set(variant_ids) if variant_group(vid) in listening)
    publisher.stock_changed(followed, _stock_messages)


def _stock_messages(variant_ids: list[int]) -> list[tuple[int, dict[str, Any]]]:
    """The variants' availability as `live.stock` layer messages, each with a new version."""
    return [
        (
            state.variant_id,
            {
                "type": "live.stock",
                "key": state.variant_id,
                "version": state.version,
                # Encoded once here, not once per socket: a hot SKU has thousands.
                "text": as_text({"type": "stock", **state.message()}),
            },
        )
        for state in stock_states_pushed(variant_ids=variant_ids)
    ]


def _low_stock_push(question: following.Question, /, *, variant_id: int, threshold: int) -> None:
    if not question.followed([STAFF_STOCK]):
        return
    for state in stock_rows(variant_ids=[variant_id]):
        message = {"type": "low_stock", **state.message(), "threshold": threshold}
        publisher.push(STAFF_STOCK, {"type": "live.push", "text": as_text(message)})


def _money(amount: Decimal) -> str:
    return f"{amount:.2f}"


@receiver(order_placed, dispatch_uid="live.push_order_placed")
def push_order_placed(sender, order, **kwargs) -> None:
    _push_order(order, event="placed", staff=True)


@receiver(payment_received, dispatch_uid="live.push_order_paid")
def push_order_paid(sender, order, **kwargs) -> None:
    _push_order(order, event="paid", staff=True)


@receiver(order_shipped, dispatch_uid="live.push_order_shipped")
def push_order_shipped(sender, order, shipment, **kwargs) -> None:
    _on_commit(
        _shipped_push,
        _order_groups(order.customer_id, staff=False),
        order_id=order.pk,
        customer_id=order.customer_id,
        shipment=shipment,
    )


def _shipped_push(
    question: following.Question, /, *, order_id: int, customer_id: int, shipment: Any
) -> None:
    """After the commit, like every push: the shipment's lines come prefetched with the
    signal, and nothing is counted at all while nobody could hear it."""
    units = sum(line.quantity for line in shipment.lines.all())
    shipped = {"tracking_number": shipment.tracking_number, "carrier": shipment.carrier}
    _order_push(
        question,
        order_id=order_id,
        customer_id=customer_id,
        event="shipped",
        shipment={**shipped, "units": units},
    )


@receiver(order_lines_cancelled, dispatch_uid="live.push_order_lines_cancelled")
def push_order_lines_cancelled(sender, order, lines, amount, **kwargs) -> None:
    _push_order(
        order,
        event="lines_cancelled",
        lines=[{"sku": line.sku, "quantity": quantity} for line, quantity in lines],
        amount=_money(amount),
    )


@receiver(order_cancelled, dispatch_uid="live.push_order_cancelled")
def push_order_cancelled(sender, order, **kwargs) -> None:
    _push_order(order, event="cancelled")


@receiver(order_delivered, dispatch_uid="live.push_order_delivered")
def push_order_delivered(sender, order, **kwargs) -> None:
    _push_order(order, event="delivered")


@receiver(refund_issued, dispatch_uid="live.push_order_refunded")
def push_order_refunded(sender, order, amount, currency, refunds_the_order, **kwargs) -> None:
    _push_order(
        order,
        event="refunded",
        amount=_money(amount),
        currency=currency,
        refunds_the_order=refunds_the_order,
        staff=True,
    )


@receiver(order_flagged, dispatch_uid="live.push_order_flagged")
def push_order_flagged(sender, order, **kwargs) -> None:
    _push_order(order, event="needs_attention", staff=True)


@receiver(order_resolved, dispatch_uid="live.push_order_resolved")
def push_order_resolved(sender, order, **kwargs) -> None:
    _push_order(order, event="resolved", staff=True)


@receiver(order_lines_allocated, dispatch_uid="live.push_order_lines_allocated")
def push_order_lines_allocated(sender, order, lines, completed, **kwargs) -> None:
    """Back-ordered units got stock: the customer hears which lines, and which are complete."""
    _push_order(
        order,
        event="lines_allocated",
        lines=[
            {"sku": line.sku, "quantity": quantity, "still_awaited": line.backordered_quantity}
            for line, quantity in lines
        ],
        completed=[line.sku for line in completed],
    )


@receiver(stock_changed, dispatch_uid="live.push_availability")
def push_availability(sender, variant_ids, **kwargs) -> None:
    ids = list(variant_ids)
    _on_commit(_stock_push, map(variant_group, ids), variant_ids=ids)


@receiver(stock_low, dispatch_uid="live.push_low_stock")
def push_low_stock(sender, variant_id, threshold, **kwargs) -> None:
    _on_commit(_low_stock_push, [STAFF_STOCK], variant_id=variant_id, threshold=threshold)


# --- Who may hold a socket: checked at each ping, and at once after these -------------------

User = get_user_model()


def _recheck(question: following.Question, /, *, user_id: int, **details: Any) -> None:
    if not question.followed([user_group(user_id)]):
        return
    publisher.push(user_group(user_id), {"type": "live.recheck", **details})


@receiver(user_logged_out, dispatch_uid="live.close_sockets_of_logged_out_session")
def close_sockets_of_logged_out_session(sender, request, user, **kwargs) -> None:
    """The sockets opened with this session close (its key is sent: the user's other sessions
    and tokens stay)."""
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if user is not None and session_key:
        _on_commit(_recheck, [user_group(user.pk)], user_id=user.pk, session_key=session_key)


@receiver(token_revoked, dispatch_uid="live.recheck_sockets_of_revoked_token")
def recheck_sockets_of_revoked_token(sender, user_id, **kwargs) -> None:
    """The sockets opened with a revoked token close now (4401); the user's others stay."""
    _on_commit(_recheck, [user_group(user_id)], user_id=user_id)


@receiver(post_save, sender=User, dispatch_uid="live.recheck_sockets_of_saved_user")
def recheck_sockets_of_saved_user(sender, instance, created, raw, **kwargs) -> None:
    """A user deactivated or no longer staff loses their sockets now, not at the next ping."""
    if not created and not raw:
        _on_commit(_recheck, [user_group(instance.pk)], user_id=instance.pk)


@receiver(m2m_changed, sender=User.user_permissions.through, dispatch_uid="live.recheck_perms")
@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="live.recheck_groups")
@receiver(m2m_changed, sender=Group.permissions.through, dispatch_uid="live.recheck_role_perms")
def recheck_sockets_of_users_losing_permissions(
    sender, instance, action, reverse, model, pk_set, **kwargs
) -> None:
    """Permissions or roles (groups) taken from users, or permissions taken from a role: the
    staff sockets of every user concerned check theirs now, after the commit.

    From either side of the relation (`user.groups.remove(role)`, `role.user_set.remove(…)`).
    A `clear()` is taken before it runs, while the relation still says whom it concerns: its
    `post_clear` names nobody.
    """
    if action == "post_remove":
        linked = list(pk_set)
    elif action == "pre_clear":
        linked = [] if not reverse else linked_ids(through=sender, instance=instance, model=model)
    else:
        return
    if sender is Group.permissions.through:
        user_ids = user_ids_in_roles(group_ids=linked if reverse else [instance.pk])
    else:
        user_ids = linked if reverse else [instance.pk]
    for user_id in user_ids:
        _on_commit(_recheck, [user_group(user_id)], user_id=user_id)
