"""Helpers for the live-update tests: sockets on the real ASGI application, committed work.

The unit tests run the ASGI application in the test's own event loop through Channels'
`WebsocketCommunicator`, with the in-memory channel layer; what the test does to the shop runs
in the test's thread and database transaction (`database_sync_to_async`), with its on-commit
callbacks run as a commit would run them (`committed`).
"""

import json
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import TestCase

from config.asgi import application

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


def text(message: dict) -> str:
    return json.dumps(message)
