"""Request ids on every log line, and the JSON formatter used in production.

The id comes from the caller's `X-Request-ID` (so a load balancer's id carries through) or is
generated, is echoed in the response, and lives in a context variable for the whole request so
every logger, ours or Django's, can stamp it on its lines.
"""

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

# A caller-supplied id is echoed into headers and logs, so only a short, plain token is trusted.
_ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

access_logger = logging.getLogger("stockwire.request")


class RequestIdFilter(logging.Filter):
    """Stamp the current request id on every record (`-` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """Render one record as one JSON line: time, level, logger, message, request id, extras."""

    _STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
        "message",
        "asctime",
        "request_id",
    }

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        entry.update(
            {key: value for key, value in vars(record).items() if key not in self._STANDARD}
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class RequestIdMiddleware:
    """Bind a request id for the request's lifetime, echo it, and log one access line."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        offered = request.headers.get("X-Request-ID", "")
        request_id = offered if _ACCEPTABLE_REQUEST_ID.match(offered) else uuid.uuid4().hex
        request.request_id = request_id
        # Left set after the response: Django logs 5xx answers (django.request) outside the
        # middleware chain; config.receivers clears it when the request finishes.
        request_id_var.set(request_id)
        started = time.perf_counter()
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        access_logger.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return response


class DevServerAccessLinesDropped(logging.Filter):
    """Drop runserver's access lines, which repeat the request-id middleware's one line per
    request; keep its other lines (a request it refused before Django saw it, and Daphne's
    lines of WebSocket handshakes, which the middleware never sees)."""

    ACCESS_LINE_FORMAT = '"%s" %s %s'
    # Daphne's runserver (django.channels.server), possibly wrapped in terminal colours.
    DAPHNE_ACCESS_LINE_FORMAT = "HTTP %(method)s %(path)s %(status)s"

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return message != self.ACCESS_LINE_FORMAT and self.DAPHNE_ACCESS_LINE_FORMAT not in message
