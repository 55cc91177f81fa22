"""Admin actions that call a service once per selected row, after asking for what it needs.

Here rather than in one app's admin so every layer can use it (an app may not import the
admin of an app above it).
"""

from collections.abc import Callable, Sequence

from django import forms
from django.contrib import messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse


class ServiceActionsMixin:
    """For a ModelAdmin whose actions call services: `service_argument` names the keyword
    each service takes the row by (`order=`), `action_ordering` the order rows are acted on,
    `action_errors` the domain errors reported per row (each has a `code`).
    """

    service_argument: str = ""
    action_ordering: Sequence[str] = ("pk",)
    action_errors: tuple[type[Exception], ...] = ()

    def action_page(
        self,
        request: HttpRequest,
        objects: list,
        form: forms.Form,
        *,
        action: str,
        title: str,
        submit: str,
        intro: str = "",
    ) -> TemplateResponse:
        """The intermediate page of an action that needs input, for the selected rows."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "intro": intro,
            "objects": objects,
            "form": form,
            "action": action,
            "submit_label": submit,
        }
        return TemplateResponse(request, "admin/action_form.html", context)

    def run_with_form(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        *,
        form_class: type[forms.Form],
        action: str,
        title: str,
        submit: str,
        intro: str,
        verb: str,
        service: Callable[..., object],
        errors: tuple[type[Exception], ...] = (),
    ) -> TemplateResponse | None:
        """Ask once for the form's values, then call `service` for each selected row with them
        (the form's field names are the service's keywords).

        The post from the changelist only shows the page; nothing changes until it is
        submitted valid.
        """
        objects = list(queryset.order_by(*self.action_ordering))
        form = form_class(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self.action_page(
                request, objects, form, action=action, title=title, submit=submit, intro=intro
            )
        for obj in objects:
            self.run_for_object(request, obj, verb, service, errors=errors, **form.cleaned_data)
        return None

    def run_for_object(
        self,
        request: HttpRequest,
        obj,
        verb: str,
        service: Callable[..., object],
        *,
        errors: tuple[type[Exception], ...] = (),
        **kwargs,
    ) -> None:
        """Call one service for one row as the request's user; say what happened or why not
        (`errors`: more errors to report than `action_errors`).

        Each call is its own transaction, so one refused row does not undo the others.
        """
        try:
            service(**{self.service_argument: obj}, actor=request.user, **kwargs)
        except (*self.action_errors, *errors) as error:
            self.message_user(request, f"{obj} not {verb}: {error} ({error.code})", messages.ERROR)
        else:
            self.message_user(request, f"{obj} {verb}.", messages.SUCCESS)

    def run_on_page(
        self,
        request: HttpRequest,
        obj,
        *,
        form_class: type[forms.Form],
        title: str,
        submit: str,
        intro: str,
        verb: str,
        service: Callable[..., object],
        errors: tuple[type[Exception], ...] = (),
    ) -> HttpResponse:
        """A page of its own for one row (a shipment of an order): show `form_class` (made
        for the row: it takes it as the service does, `order=`); once it is posted valid, call
        `service` for the row as the request's user with the form's `service_kwargs()`, and go
        back to the row's page.

        A domain error (`action_errors`, `errors`: another change came first) is shown on the
        form with the input kept, as a field's error is; nothing changed then.
        """
        data = request.POST if request.method == "POST" else None
        form = form_class(data, **{self.service_argument: obj})
        if data is not None and form.is_valid():
            try:
                service(**{self.service_argument: obj}, actor=request.user, **form.service_kwargs())
            except (*self.action_errors, *errors) as error:
                form.add_error(None, f"{error} ({error.code})")
            else:
                self.message_user(request, f"{obj} {verb}.", messages.SUCCESS)
                opts = self.opts
                return HttpResponseRedirect(
                    reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": obj,
            "title": title,
            "intro": intro,
            "objects": [],
            "form": form,
            "submit_label": submit,
        }
        return TemplateResponse(request, "admin/action_form.html", context)


def service_page(
    *,
    form_class: type[forms.Form],
    title: str,
    submit: str,
    intro: str,
    verb: str,
    service: Callable[..., object],
    errors: tuple[type[Exception], ...] = (),
) -> Callable[..., HttpResponse]:
    """The view of a tool page (core.admin_hooks.PageTool) that runs `service` on its object
    with `form_class`, as `run_on_page` does; `title` names the object as `{obj}`."""

    def view(model_admin: ServiceActionsMixin, request: HttpRequest, obj) -> HttpResponse:
        return model_admin.run_on_page(
            request,
            obj,
            form_class=form_class,
            title=title.format(obj=obj),
            submit=submit,
            intro=intro,
            verb=verb,
            service=service,
            errors=errors,
        )

    return view
