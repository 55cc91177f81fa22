"""Let apps above orders add panels, inlines and actions to the order page.

orders may not import the apps above it, yet staff read an order's payments and invoices on
its page. Such an app registers an `OrderPageExtension` from its admin module, as Wagtail's
hooks let apps add to its admin; `orders.admin.OrderAdmin` reads the registry whenever it builds
the page, so the page served is the one `orders/admin.py` defines, with what others added.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.admin.options import InlineModelAdmin
from django.http import HttpResponse

from orders.models import Order


@dataclass(frozen=True)
class OrderPagePanel:
    """A read-only field of the order page, shown to users with `permission` only.

    `display` is an `@admin.display` function of the order. `permission` is the one the shown
    rows' own admin list asks for, so a user refused that list does not read them here.
    """

    display: Callable[[Order], str]
    permission: str


@dataclass(frozen=True)
class OrderPageAction:
    """An admin action on the selected orders, offered to users with `permission` only.

    `function(model_admin, request, queryset)` is an `@admin.action` function; it may ask for
    what it needs and report per order with `model_admin.run_with_form` (core.admin_actions).
    """

    function: Callable[..., HttpResponse | None]
    permission: str


@dataclass(frozen=True)
class OrderPageExtension:
    """What one app adds to the order page: a fieldset of panels, inlines and actions."""

    title: str
    panels: tuple[OrderPagePanel, ...] = ()
    inlines: tuple[type[InlineModelAdmin], ...] = ()
    actions: tuple[OrderPageAction, ...] = ()


_extensions: dict[str, OrderPageExtension] = {}


def order_page_extend(*, app_label: str, extension: OrderPageExtension) -> None:
    """Add an app's panels, inlines and actions to the order page, after those before it.

    Keyed by app, so importing the admin module again replaces the app's extension.
    """
    _extensions[app_label] = extension


def order_page_extensions() -> list[OrderPageExtension]:
    """The extensions registered so far, in the order their apps registered them."""
    return list(_extensions.values())
