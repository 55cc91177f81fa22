"""Let apps above an app add panels, inlines, actions and pages to one of its admin pages.

An app may not import the apps above it, yet staff read what those know on its pages (an
order's payments, a product's reviews). The app offers a `PageHooks` registry for such a page,
and an app above registers a `PageExtension` there from its admin module, as Wagtail's hooks let
apps add to its admin. The page's ModelAdmin (with `ExtendedPageMixin`) reads the registry
whenever it builds the page, so the page served is the one its own app defines, with what
others added.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.admin.options import IS_POPUP_VAR, InlineModelAdmin
from django.contrib.admin.utils import unquote
from django.contrib.messages import WARNING
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import path, reverse

from core.admin import PermissionRequired


@dataclass(frozen=True)
class PagePanel:
    """A read-only field of the page, shown to users with `permission` only.

    `display` is an `@admin.display` function of the page's object. `permission` is the one the
    shown rows' own admin list asks for, so a user refused that list does not read them here.
    """

    display: Callable[[Model], str]
    permission: str


@dataclass(frozen=True)
class PageAction:
    """An admin action on the selected rows, offered to users with `permission` only.

    `function(model_admin, request, queryset)` is an `@admin.action` function; it may ask for
    what it needs and report per row with `model_admin.run_with_form` (core.admin_actions).
    """

    function: Callable[..., HttpResponse | None]
    permission: str


@dataclass(frozen=True)
class PageTool:
    """A page of its own on one object (a form staff fill in), a button on the object's page.

    Offered to users with `permission` only, at `<object's page>/tools/<slug>/`, and only while
    `applies(obj)` (an order's status permits it: no "Ship" button on a delivered order).
    `view(model_admin, request, obj)` answers it; it may run a service with
    `model_admin.run_on_page` (core.admin_actions), which the service still guards.
    """

    slug: str
    label: str
    view: Callable[..., HttpResponse]
    permission: str
    applies: Callable[[Model], bool] | None = None

    def offered(self, request: HttpRequest, obj: Model) -> bool:
        """Whether the object's page shows this tool to the request's user."""
        if not request.user.has_perm(self.permission):
            return False
        return self.applies is None or self.applies(obj)


@dataclass(frozen=True)
class PageExtension:
    """What one app adds to a page: a fieldset of panels, inlines, actions and tool pages."""

    title: str
    panels: tuple[PagePanel, ...] = ()
    inlines: tuple[type[InlineModelAdmin], ...] = ()
    actions: tuple[PageAction, ...] = ()
    tools: tuple[PageTool, ...] = ()


class PageHooks:
    """The extensions of one admin page, in the order their apps registered them."""

    def __init__(self) -> None:
        self._extensions: dict[str, PageExtension] = {}

    def extend(self, *, app_label: str, extension: PageExtension) -> None:
        """Add an app's panels, inlines and actions to the page, after those before it.

        Keyed by app, so importing the admin module again replaces the app's extension.
        """
        self._extensions[app_label] = extension

    def extensions(self) -> list[PageExtension]:
        return list(self._extensions.values())


class ExtendedPageMixin:
    """For the ModelAdmin of a page that `page_hooks` lets apps above extend: adds their
    inlines, a fieldset of the panels each user may read, the actions each may run, and
    buttons (`page_tools` in the page's context: label and URL) to the tool pages each may use
    on the object as it stands, its own `tools` first."""

    page_hooks: PageHooks
    tools: tuple[PageTool, ...] = ()
    # Where the extensions' inlines go among the page's own (None: after them all).
    extension_inlines_at: int | None = None

    def get_urls(self) -> list:
        opts = self.opts
        return [
            path(
                "<path:object_id>/tools/<slug:slug>/",
                self.admin_site.admin_view(self.tool_view),
                name=f"{opts.app_label}_{opts.model_name}_tool",
            ),
            *super().get_urls(),
        ]

    def _every_tool(self) -> dict[str, PageTool]:
        added = (tool for extension in self.page_hooks.extensions() for tool in extension.tools)
        return {tool.slug: tool for tool in (*self.tools, *added)}

    def tool_view(self, request: HttpRequest, object_id: str, slug: str) -> HttpResponse:
        """Answer a tool page; opened on an object it no longer applies to, say so on the
        object's page instead. A form posted meanwhile is still run: its service decides,
        and a refusal keeps the input on the form."""
        tool = self._every_tool().get(slug)
        if tool is None:
            raise Http404(f"No page {slug} on {self.opts.verbose_name_plural}.")
        if not request.user.has_perm(tool.permission):
            raise PermissionRequired(tool.permission)
        # As the change page finds it: an address whose id is no key is not found, not a 500.
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"No {self.opts.verbose_name} {object_id}.")
        if request.method != "POST" and not tool.offered(request, obj):
            self.message_user(request, f"{tool.label} does not apply to {obj} now.", WARNING)
            opts = self.opts
            return redirect(f"admin:{opts.app_label}_{opts.model_name}_change", obj.pk)
        return tool.view(self, request, obj)

    def render_change_form(self, request: HttpRequest, context: dict, *args, obj=None, **kwargs):
        if obj is not None:
            name = f"admin:{self.opts.app_label}_{self.opts.model_name}_tool"
            context["page_tools"] = [
                (tool.label, reverse(name, args=[obj.pk, tool.slug]))
                for tool in self._every_tool().values()
                if tool.offered(request, obj)
            ]
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)

    def get_inlines(self, request: HttpRequest, obj: Model | None) -> list:
        added = [
            inline for extension in self.page_hooks.extensions() for inline in extension.inlines
        ]
        own = list(super().get_inlines(request, obj))
        at = len(own) if self.extension_inlines_at is None else self.extension_inlines_at
        return [*own[:at], *added, *own[at:]]

    def get_fieldsets(self, request: HttpRequest, obj: Model | None = None) -> list:
        fieldsets = list(super().get_fieldsets(request, obj))
        for extension in self.page_hooks.extensions():
            shown = tuple(
                panel.display
                for panel in extension.panels
                if request.user.has_perm(panel.permission)
            )
            if shown:
                fieldsets.append((extension.title, {"fields": shown}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> tuple:
        added = [
            panel.display
            for extension in self.page_hooks.extensions()
            for panel in extension.panels
        ]
        return (*super().get_readonly_fields(request, obj), *added)

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        if IS_POPUP_VAR in request.GET:
            return actions
        for extension in self.page_hooks.extensions():
            for action in extension.actions:
                if request.user.has_perm(action.permission):
                    function, name, description = self.get_action(action.function)
                    actions[name] = (function, name, description)
        return actions
