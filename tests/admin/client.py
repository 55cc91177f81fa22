"""Driving the admin as a browser does: the changelist's actions, their messages, uploads."""

import io

from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

ORDERS_URL = "/admin/orders/order/"
LEVELS_URL = "/admin/inventory/stocklevel/"


def action_choices(client, url: str) -> set[str]:
    response = client.get(url)
    assert response.status_code == 200
    form = response.context["action_form"]  # None when the user may run no action at all
    return {name for name, _label in form.fields["action"].choices} if form else set()


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def run_action(client, url: str, action: str, objects, **fields):
    """POST an action the way the changelist does; `apply` submits its intermediate form."""
    data = {"action": action, "_selected_action": [obj.pk for obj in objects], **fields}
    if "apply" not in fields:
        data["index"] = 0
    return client.post(url, data)


def png_upload(name: str) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    PILImage.new("RGB", (40, 30), "teal").save(buffer, format="PNG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")
