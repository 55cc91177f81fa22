"""Helpers for the live-update tests: sockets on the real ASGI application, committed work.

The unit tests run the ASGI application in the test's own event loop through Channels'
`WebsocketCommunicator`, with the in-memory channel layer; what the test does to the shop runs
in the test's thread and database transaction (`database_sync_to_async`), with its on-commit
callbacks run as a commit would run them (`committed`).
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import TestCase

from config.asgi import application
from conftest import PROJECT_DIR
from tests.faults import closed_port, port_open, wait_until

ORIGIN = "http://testserver"


def scenario(coroutine_function: Callable[[], Any]) -> Any:
    """Run an async test body in a fresh event loop from a sync test."""
    return async_to_sync(coroutine_function)()


def socket(
    path: str,
    *,
    subprotocols: list[str] | None = None,
    origin: str | None = ORIGIN,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> WebsocketCommunicator:
    sent = [(b"origin", origin.encode())] if origin else []
    return WebsocketCommunicator(
        application, path, headers=sent + (headers or []), subprotocols=subprotocols
    )


def _committed_sync(work: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    with TestCase.captureOnCommitCallbacks(execute=True):
        return work(*args, **kwargs)


async def committed(work: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run `work` in the test's thread and transaction, then its on-commit callbacks."""
    return await database_sync_to_async(_committed_sync)(work, *args, **kwargs)


async def subscribed(sku: str) -> WebsocketCommunicator:
    """A stock socket subscribed to `sku`, its snapshot read."""
    communicator = socket("/ws/v1/stock")
    await communicator.connect()
    await communicator.send_json_to({"type": "subscribe", "skus": [sku]})
    await communicator.receive_json_from(timeout=2)
    return communicator


async def messages(communicator: WebsocketCommunicator, count: int, timeout: float = 2) -> list:
    return [await communicator.receive_json_from(timeout=timeout) for _ in range(count)]


async def closed_with(communicator: WebsocketCommunicator, timeout: float = 2) -> int:
    """The close code the server sent (skipping messages sent before it)."""
    while True:
        output = await communicator.receive_output(timeout=timeout)
        if output["type"] == "websocket.close":
            return output.get("code")


async def connected_customer(token: str, path: str = "/ws/v1/orders") -> Any:
    """A customer's orders socket authenticated by subprotocol; returns it and its snapshot."""
    communicator = socket(path, subprotocols=["stockwire.v1", f"bearer.{token}"])
    accepted, subprotocol = await communicator.connect()
    assert accepted and subprotocol == "stockwire.v1"
    return communicator, await communicator.receive_json_from(timeout=2)


def redis_layer_through(gate: Any) -> dict[str, Any]:
    """`CHANNEL_LAYERS` for a Redis channel layer reached through `gate` (`tests.faults.
    BrokerGate`): a Redis that refuses, hangs or answers as the test decides."""
    return {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [gate.url(3)]},
        }
    }


def text(message: dict) -> str:
    return json.dumps(message)


# --- Real servers (end-to-end tests) -----------------------------------------------------------


# Daphne's form (module:attribute) of the application Django and Channels are configured with.
ASGI_APPLICATION = ":".join(settings.ASGI_APPLICATION.rsplit(".", 1))
REDIS_NOT_PERSISTENT = ["--save", "", "--appendonly", "no"]
# The compose file's `live` service's: Daphne refuses larger messages before the app sees them.
DAPHNE_MAX_MESSAGE_BYTES = 65536
DAPHNE_MESSAGE_LIMITS = [
    "--websocket-max-message-size",
    str(DAPHNE_MAX_MESSAGE_BYTES),
    "--websocket-max-frame-size",
    str(DAPHNE_MAX_MESSAGE_BYTES),
]


class ServerProcess:
    """A server process of the shop on 127.0.0.1 (Daphne, gunicorn or redis-server), its output
    kept in a file for the failure message, stopped by its process group. Started at once;
    `wait_ready` waits for its port (so several start side by side)."""

    def __init__(self, command: list[str], *, port: int, env: dict[str, str], log: Path) -> None:
        self.command = command
        self.port = port
        self.log = log
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                command,
                cwd=PROJECT_DIR,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 30) -> "ServerProcess":
        up = wait_until(
            lambda: port_open(self.port) or self.process.poll() is not None, timeout=timeout
        )
        if not up or self.process.poll() is not None:
            self.stop()
            raise RuntimeError(f"{self.command[:3]} did not start:\n{self.output()}")
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def daphne(*, env: dict[str, str], log: Path) -> ServerProcess:
    """The compose file's `live` service: Daphne serving config.asgi (the sockets)."""
    port = closed_port()
    return ServerProcess(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            *DAPHNE_MESSAGE_LIMITS,
            ASGI_APPLICATION,
        ],
        port=port,
        env=env,
        log=log,
    )


def gunicorn(*, env: dict[str, str], log: Path) -> ServerProcess:
    """The compose file's `web` service: gunicorn serving config.wsgi (the HTTP API)."""
    port = closed_port()
    return ServerProcess(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2"],
        port=port,
        env=env,
        log=log,
    )


def redis_server(*, log: Path, port: int | None = None) -> ServerProcess:
    """A Redis of the test's own (never the machine's shared one): it may be stopped."""
    port = port or closed_port()
    return ServerProcess(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", *REDIS_NOT_PERSISTENT],
        port=port,
        env=dict(os.environ),
        log=log,
    )
