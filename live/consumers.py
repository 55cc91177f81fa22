"""The three sockets: `/ws/v1/orders`, `/ws/v1/stock` and `/ws/v1/staff` (README "Live updates").

Every socket speaks JSON objects with a `type`. What it may send, how it is limited, and the
close codes are the same for all three (`LiveSocket`); each adds who may connect, what it
subscribes to and what its snapshot holds. The snapshot is read after the socket joined its
groups: a change committed after the read is pushed, one committed before is in the snapshot,
and one in between is both, which its version tells apart.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from importlib import import_module
from typing import Any
from urllib.parse import parse_qs

from channels.auth import get_user
from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull, StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from redis.exceptions import RedisError

from core.json_input import json_parse, unstorable_text
from live import following, selectors
from live.connections import connections
from live.groups import STAFF_ORDERS, STAFF_STOCK, customer_group, user_group
from live.hub import DEFAULT_GROUP_EXPIRY_SECONDS, hub_for
from live.publish import publisher

logger = logging.getLogger("stockwire.live")

# Close codes (README "Live updates" lists them for clients).
CLOSE_UNAUTHENTICATED = 4401  # no token in time, or a bad, expired or revoked one
CLOSE_FORBIDDEN = 4403  # the staff socket for a user who is not (or no longer) staff
CLOSE_IDLE = 4408  # nothing heard from the client for LIVE_IDLE_TIMEOUT_SECONDS
CLOSE_TOO_MANY_CONNECTIONS = 4429  # the user already holds LIVE_MAX_CONNECTIONS_PER_USER sockets
CLOSE_TRY_AGAIN_LATER = 4503  # the channel layer is unavailable: reconnect later
CLOSE_RATE_LIMITED = 4008  # kept sending after LIVE_MESSAGE_BURST `rate_limited` errors in a row
CLOSE_INTERNAL_ERROR = 4500  # the server failed otherwise (logged with its traceback)
# Every code is the application's own (4000-4999): Daphne's WebSocket library refuses to send
# RFC 6455's 1008 or 1011 from an application, and a close it refuses leaves the socket open.

# What a channel layer (or its Redis) that is down, hung or full raises under a socket: the
# socket closes with 4503. OSError covers refused connections and timeouts.
LAYER_ERRORS = (RedisError, OSError, ChannelFull)

# The subprotocol a client offers beside `bearer.<token>`, and which the server then accepts
# (a browser fails a handshake whose answer names none of the subprotocols it offered).
SUBPROTOCOL = "stockwire.v1"
BEARER_PREFIX = "bearer."
# Longer than any token `POST /auth/token` issues, as the HTTP API's bearer check.
MAX_TOKEN_LENGTH = 200
# Versions are order events' ids and stock movements' versions: PostgreSQL bigints.
MAX_VERSION = 2**63 - 1

TokenUser = Callable[..., AbstractBaseUser | None]


def as_text(message: dict[str, Any]) -> str:
    """A message as the sockets send it: compact JSON."""
    return json.dumps(message, separators=(",", ":"))


class LiveSocket(AsyncWebsocketConsumer):
    """JSON in and out, the limits every socket shares, and the ping that keeps it alive."""

    # The message types a client may send, and the method each calls with the message.
    handlers: dict[str, str] = {"ping": "on_ping", "pong": "on_pong", "resync": "on_resync"}

    async def connect(self) -> None:
        publisher.serving_loop_note()
        self.closing = False
        self.last_heard = asyncio.get_running_loop().time()
        self.allowance = float(settings.LIVE_MESSAGE_BURST)
        self.refused_in_a_row = 0
        self.heartbeat = asyncio.create_task(self._heartbeat())
        await self.opened()

    async def opened(self) -> None:
        """Accept the socket and start it (subclasses say how)."""
        raise NotImplementedError

    # --- what the client sends ------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        now = asyncio.get_running_loop().time()
        elapsed, self.last_heard = now - self.last_heard, now
        if not self._within_rate(elapsed):
            return await self._rate_limited()
        if text_data is None:
            return await self.error("bad_message", "Send JSON text frames, not binary ones.")
        if _utf8_length_over(text_data, settings.LIVE_MAX_MESSAGE_BYTES):
            return await self.error(
                "message_too_large",
                f"A message is at most {settings.LIVE_MAX_MESSAGE_BYTES} bytes.",
            )
        try:
            message = json_parse(text_data)  # deep nesting and NaN are a ValueError too
        except ValueError:
            return await self.error("not_json", "A message is one JSON object.")
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            return await self.error("bad_message", 'A message is a JSON object with a "type".')
        # Its SKUs and token are looked up in the database, which could not take such text.
        problem = unstorable_text(message)
        if problem is not None:
            return await self.error("bad_message", f"A message's text may not hold {problem}.")
        handler = self.handlers.get(message["type"])
        if handler is None:
            known = ", ".join(sorted(self.handlers))
            return await self.error("unknown_type", f"Known types: {known}.")
        await getattr(self, handler)(message)

    def _within_rate(self, elapsed: float) -> bool:
        """A token bucket: LIVE_MESSAGES_PER_SECOND on average, bursts of LIVE_MESSAGE_BURST.
        Every message costs a snapshot read or a reply: one client may not make the server
        spend without bound."""
        self.allowance = min(
            settings.LIVE_MESSAGE_BURST,
            self.allowance + elapsed * settings.LIVE_MESSAGES_PER_SECOND,
        )
        if self.allowance < 1:
            return False
        self.allowance -= 1
        self.refused_in_a_row = 0
        return True

    async def _rate_limited(self) -> None:
        self.refused_in_a_row += 1
        if self.refused_in_a_row > settings.LIVE_MESSAGE_BURST:
            await self.close_with(CLOSE_RATE_LIMITED)
            return
        await self.error(
            "rate_limited",
            f"At most {settings.LIVE_MESSAGES_PER_SECOND:g} messages a second; this one was "
            "ignored. Keep sending and the socket is closed.",
        )

    async def on_ping(self, message: dict) -> None:
        await self.send_json({"type": "pong"})

    async def on_pong(self, message: dict) -> None:
        """Nothing to do: hearing it was the point (`last_heard`)."""

    async def on_resync(self, message: dict) -> None:
        await self.snapshot_send(message)

    async def snapshot_send(self, message: dict) -> None:
        raise NotImplementedError

    # --- what the server sends ------------------------------------------------------------

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=as_text(content))

    async def error(self, code: str, detail: str) -> None:
        """Tell the client its message was refused; the socket stays open."""
        await self.send_json({"type": "error", "code": code, "detail": detail})

    async def live_push(self, event: dict) -> None:
        """A push from `live.publish` through the channel layer, encoded once by the sender:
        hand it on as it is."""
        await self.send(text_data=event["text"])

    async def close_with(self, code: int) -> None:
        self.closing = True
        heartbeat = getattr(self, "heartbeat", None)
        if heartbeat is not None and heartbeat is not asyncio.current_task():
            heartbeat.cancel()
        await self.close(code)

    # --- life of the socket ---------------------------------------------------------------

    async def groups_join(self, groups: list[str]) -> bool:
        """Join `groups` (left again when the socket closes) and mark them listened to
        (`live.following`: commits push only to marked groups; renewed at each ping), both
        before the caller reads its snapshot; on a channel layer that does not answer, close
        the socket asking the client to come back later."""
        try:
            for group in groups:
                await asyncio.wait_for(
                    self.channel_layer.group_add(group, self.channel_name),
                    settings.LIVE_PUBLISH_TIMEOUT_SECONDS,
                )
                self.groups.append(group)
            await asyncio.wait_for(following.mark(groups), settings.LIVE_PUBLISH_TIMEOUT_SECONDS)
        except LAYER_ERRORS as error:  # fail open: the shop goes on, this socket retries later
            logger.warning("live: could not join %s (%s)", groups, type(error).__name__)
            await self.close_with(CLOSE_TRY_AGAIN_LATER)
            return False
        return True

    async def _discard(self, group: str) -> None:
        try:
            await asyncio.wait_for(
                self.channel_layer.group_discard(group, self.channel_name),
                settings.LIVE_PUBLISH_TIMEOUT_SECONDS,
            )
        except Exception:  # the membership expires on the layer by itself
            return

    async def _heartbeat(self) -> None:
        """Ping the client every LIVE_PING_SECONDS; close a socket silent for longer than
        LIVE_IDLE_TIMEOUT_SECONDS; let subclasses check on their user each time; keep the
        socket's groups joined and marked as listened to.

        A round that fails (a user's check meeting a database that went away) is logged and
        the next ping tries again: a heartbeat that ended would leave the socket open with
        its marks lapsing, hearing nothing more. The layer forgets a membership after its
        `group_expiry` (a day in channels), so the groups are joined again every half of it,
        as the hub does for the SKUs' groups.
        """
        loop = asyncio.get_running_loop()
        expiry = getattr(self.channel_layer, "group_expiry", DEFAULT_GROUP_EXPIRY_SECONDS)
        joined = loop.time()
        while True:
            await asyncio.sleep(settings.LIVE_PING_SECONDS)
            if loop.time() - self.last_heard > settings.LIVE_IDLE_TIMEOUT_SECONDS:
                await self.close_with(CLOSE_IDLE)
                return
            try:
                await self.send_json({"type": "ping"})
                if not await self.still_allowed():
                    return
            except Exception:
                logger.exception("live: a ping's round failed; the next ping tries again")
            if loop.time() - joined >= expiry / 2:
                await self._groups_joined_again()
                joined = loop.time()
            await self._marks_renewed()

    async def _groups_joined_again(self) -> None:
        """Join this socket's groups again before the layer's membership lapses; a group the
        layer does not answer for is tried again at the next period."""
        for group in list(self.groups):
            try:
                await asyncio.wait_for(
                    self.channel_layer.group_add(group, self.channel_name),
                    settings.LIVE_PUBLISH_TIMEOUT_SECONDS,
                )
            except Exception as error:
                logger.info("live: could not join a group again (%s)", type(error).__name__)

    async def _marks_renewed(self) -> None:
        """Keep this socket's groups marked as listened to (`live.following`). A failure is
        left to the layer's next use to notice: the mark lasts three pings."""
        try:
            await asyncio.wait_for(
                following.mark(self.groups), settings.LIVE_PUBLISH_TIMEOUT_SECONDS
            )
        except Exception as error:
            logger.info("live: could not renew a socket's marks (%s)", type(error).__name__)

    async def still_allowed(self) -> bool:
        """Whether the socket may stay open (checked at each ping); closes it if not."""
        return True

    async def dispatch(self, message: dict) -> None:
        # Pushes skip Channels' per-message `close_old_connections` (a thread hop each): a
        # push needs no database. (Stock pushes do not come this way: the hub calls
        # `StockSocket.live_stock` itself.)
        if message["type"] == "live.push":
            await self.live_push(message)
            return
        await super().dispatch(message)

    async def websocket_disconnect(self, message: dict) -> None:
        await self._ended(message.get("code"))
        raise StopConsumer()

    async def _ended(self, code: int | None) -> None:
        """Stop the heartbeat, leave the groups, and let the subclass let go of what it holds
        (the hub's followers, the user's connection count); once, however the socket ended."""
        if getattr(self, "ended", False):
            return
        self.ended = True
        heartbeat = getattr(self, "heartbeat", None)
        if heartbeat is not None:
            heartbeat.cancel()
        for group in list(self.groups):
            await self._discard(group)
        self.groups = []
        await self.disconnect(code)

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except asyncio.CancelledError:
            # Daphne cancels an application still running `application_close_timeout` after
            # its client left (a slow snapshot read): it lets go as a failed one does.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._ended(None))
            raise
        except Exception as error:
            if isinstance(error, LAYER_ERRORS):  # the channel layer failed under the socket
                logger.warning("live: socket ended by %s: %s", type(error).__name__, error)
                code = CLOSE_TRY_AGAIN_LATER
            else:  # a bug: not the client's to retry later as if the layer were down
                logger.exception("live: socket failed")
                code = CLOSE_INTERNAL_ERROR
            with contextlib.suppress(Exception):  # the client went too
                await send({"type": "websocket.close", "code": code})
            # No disconnect comes to a consumer that failed: let go here, or the hub would
            # keep pushing to it and its user's connection slot stay taken.
            try:
                await self._ended(code)
            except Exception:
                logger.exception("live: letting go of a failed socket failed")


class AuthenticatedSocket(LiveSocket):
    """A socket of one signed-in user: a bearer token in `Sec-WebSocket-Protocol`
    (`stockwire.v1, bearer.<token>`) or in the first message (`{"type": "auth", "token": …}`);
    subclasses may also take the session's user (`session_user`)."""

    handlers = {**LiveSocket.handlers, "auth": "on_auth"}
    session_allowed = False

    def __init__(self, *, token_user: TokenUser, **kwargs: Any) -> None:
        """`token_user(raw=…)` is the API's own token check, handed down by config.asgi (this
        app may not import the storefront's)."""
        super().__init__(**kwargs)
        self.token_user = token_user

    async def opened(self) -> None:
        self.user: AbstractBaseUser | None = None
        self.token: str | None = None
        offered = self.scope.get("subprotocols") or []
        await self.accept(SUBPROTOCOL if SUBPROTOCOL in offered else None)
        tokens = [p[len(BEARER_PREFIX) :] for p in offered if p.startswith(BEARER_PREFIX)]
        session_user = self.scope.get("user")
        if tokens:
            await self.authenticate(tokens[0])
        elif self.session_allowed and session_user is not None and session_user.is_authenticated:
            await self.authorised(session_user)
        else:
            self.auth_wait = asyncio.create_task(self._auth_deadline())

    async def _auth_deadline(self) -> None:
        await asyncio.sleep(settings.LIVE_AUTH_TIMEOUT_SECONDS)
        if self.user is None:
            await self.close_with(CLOSE_UNAUTHENTICATED)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        if self.closing:
            return None
        return await super().receive(text_data=text_data, bytes_data=bytes_data)

    async def on_auth(self, message: dict) -> None:
        if self.user is not None:
            return await self.error("bad_message", "This socket is authenticated already.")
        token = message.get("token")
        if not isinstance(token, str):
            return await self.error("bad_message", 'Send {"type": "auth", "token": "…"}.')
        await self.authenticate(token, since=message.get("since"))

    async def authenticate(self, token: str, *, since: Any = None) -> None:
        user = None
        if token and len(token) <= MAX_TOKEN_LENGTH:
            user = await database_sync_to_async(self.token_user)(raw=token)
        if user is None:
            await self.close_with(CLOSE_UNAUTHENTICATED)
            return
        self.token = token
        await self.authorised(user, since=since)

    async def authorised(self, user: AbstractBaseUser, *, since: Any = None) -> None:
        """`user` is who they say; admit them if they may connect, join, send the snapshot."""
        if not await self.may_connect(user):
            await self.close_with(CLOSE_FORBIDDEN)
            return
        self.user = user
        held = await connections.add(user.pk, self.channel_name)
        if held > settings.LIVE_MAX_CONNECTIONS_PER_USER:
            await connections.remove(user.pk, self.channel_name)
            self.user = None
            await self.close_with(CLOSE_TOO_MANY_CONNECTIONS)
            return
        if await self.groups_join([user_group(user.pk), *await self.groups_of(user)]):
            await self.snapshot_send({"since": since if since is not None else self._since()})

    def _since(self) -> Any:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        return query.get("since", [None])[0]

    async def may_connect(self, user: AbstractBaseUser) -> bool:
        return True

    async def groups_of(self, user: AbstractBaseUser) -> list[str]:
        raise NotImplementedError

    async def on_resync(self, message: dict) -> None:
        if self.user is None:
            return await self.error("not_authenticated", "Authenticate first.")
        await self.snapshot_send(message)

    async def still_allowed(self) -> bool:
        """The user's token or session still names them, and they still may connect (else
        4401 or 4403): at each ping, and at once when `live.receivers` asks (`live_recheck`)."""
        if self.user is None or self.closing:
            return not self.closing
        await connections.refresh(self.user.pk, self.channel_name)
        user = await self.current_user()
        if user is None or user.pk != self.user.pk:
            await self.close_with(CLOSE_UNAUTHENTICATED)  # revoked, expired or logged out
            return False
        if not await self.still_may(user):
            await self.close_with(CLOSE_FORBIDDEN)
            return False
        return True

    async def current_user(self) -> AbstractBaseUser | None:
        """Who the token or the session names now, read afresh (None: nobody active)."""
        if self.token is not None:
            return await database_sync_to_async(self.token_user)(raw=self.token)
        session = _session_now(self.scope["session"].session_key)
        user = await get_user({"session": session})
        return user if user.is_authenticated else None

    async def still_may(self, user: AbstractBaseUser) -> bool:
        """Whether `user`, read afresh, may keep what they were granted at connect."""
        return await self.may_connect(user)

    async def live_recheck(self, event: dict) -> None:
        """The user changed, logged out or lost a token (`live.receivers`): check now, not at
        the next ping. A log-out names its session: only the sockets of that session close."""
        logged_out = event.get("session_key")
        if logged_out is not None:
            if self.token is None and self.scope["session"].session_key == logged_out:
                await self.close_with(CLOSE_UNAUTHENTICATED)
            return
        await self.still_allowed()

    async def disconnect(self, code: int | None) -> None:
        wait = getattr(self, "auth_wait", None)
        if wait is not None:
            wait.cancel()
        if getattr(self, "user", None) is not None:
            await connections.remove(self.user.pk, self.channel_name)


def _utf8_length_over(text: str, limit: int) -> bool:
    """Whether `text` takes more than `limit` bytes in UTF-8 (as it came over the wire), most
    often without encoding it again: a character takes 1 to 4 bytes, so only a text between
    limit/4 and limit characters long needs counting. (Daphne already refused anything above
    its own, larger limit: --websocket-max-message-size.)"""
    if len(text) > limit:
        return True
    if 4 * len(text) <= limit:
        return False
    return len(text.encode()) > limit


def _session_now(session_key: str | None) -> Any:
    """The session stored under `session_key` as it is now (empty once logged out)."""
    return import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key)


def _version(value: Any) -> int:
    """A client's `since`: a whole number up to the largest version (a bigint); anything else
    is 0, as no `since` at all (the open orders only)."""
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: JSON's 1e400 is infinite
        return 0
    return min(max(number, 0), MAX_VERSION)


class OrdersSocket(AuthenticatedSocket):
    """`/ws/v1/orders`: every change of the customer's own orders."""

    async def groups_of(self, user: AbstractBaseUser) -> list[str]:
        self.customer_id = await database_sync_to_async(_customer_id)(user)
        return [customer_group(self.customer_id)]

    async def snapshot_send(self, message: dict) -> None:
        orders, complete = await database_sync_to_async(selectors.customer_orders)(
            customer_id=self.customer_id, since=_version(message.get("since"))
        )
        await self.send_json(
            {
                "type": "snapshot",
                "orders": [order.message() for order in orders],
                "complete": complete,
            }
        )


def _customer_id(user: AbstractBaseUser) -> int:
    """The user's customer profile (every user has one, `orders.receivers`); `token_user`
    attaches it, with its id, in its one query."""
    return user.customer.pk


class StaffSocket(AuthenticatedSocket):
    """`/ws/v1/staff`: new and flagged orders and low stock, each for the staff who may see
    it (the permissions of the dashboard's panels); a staff token or the admin's session."""

    session_allowed = True

    async def may_connect(self, user: AbstractBaseUser) -> bool:
        return bool(user.is_active and user.is_staff)

    async def groups_of(self, user: AbstractBaseUser) -> list[str]:
        self.sees_orders, self.sees_stock = await database_sync_to_async(_staff_permissions)(user)
        return [STAFF_ORDERS] * self.sees_orders + [STAFF_STOCK] * self.sees_stock

    async def still_may(self, user: AbstractBaseUser) -> bool:
        """Still active staff, with every permission the socket was granted (one lost closes
        it: the client reconnects with what is left)."""
        if not await self.may_connect(user):
            return False
        sees_orders, sees_stock = await database_sync_to_async(_staff_permissions)(user)
        return (sees_orders or not self.sees_orders) and (sees_stock or not self.sees_stock)

    async def snapshot_send(self, message: dict) -> None:
        snapshot = await database_sync_to_async(_staff_snapshot)(
            orders=self.sees_orders, stock=self.sees_stock
        )
        await self.send_json({"type": "snapshot", **snapshot})


def _staff_permissions(user: AbstractBaseUser) -> tuple[bool, bool]:
    return user.has_perm("orders.view_order"), user.has_perm("inventory.view_stocklevel")


def _staff_snapshot(*, orders: bool, stock: bool) -> dict[str, Any]:
    snapshot: dict[str, Any] = {}
    if orders:
        snapshot["attention_count"], snapshot["attention"] = selectors.staff_attention()
    if stock:
        snapshot["low_stock_count"], snapshot["low_stock"] = selectors.staff_low_stock()
    return snapshot


class StockSocket(LiveSocket):
    """`/ws/v1/stock`: the availability of the SKUs a client subscribed to, anonymous or not.

    `{"type": "subscribe", "skus": [...], "products": [ids]}` adds SKUs (a product's are its
    active variants), `unsubscribe` removes them; each answers with the snapshot of every
    SKU subscribed.

    The socket follows its SKUs through this process's hub (`live.hub`), not a group of its
    own: the hub hears a push once, coalesces it (at most one per SKU per
    LIVE_STOCK_COALESCE_SECONDS, the newest always) and calls `live_stock` of each local
    follower. The socket sends what is newer than the version it holds for the SKU (its
    snapshot's or its last push's) and drops the rest. Pushes come in while a subscribe,
    unsubscribe or resync awaits its snapshot, so they are held until the snapshot is sent,
    then the newest of each SKU goes out if the snapshot is older: a client never gets a push
    and then an older snapshot, nor a burst of held pushes.
    """

    handlers = {**LiveSocket.handlers, "subscribe": "on_subscribe", "unsubscribe": "on_unsubscribe"}

    async def opened(self) -> None:
        self.subscribed: dict[int, str] = {}  # variant id -> SKU
        self.hub = hub_for(self.channel_layer)
        self.versions: dict[int, int] = {}  # variant id -> the newest version the client has
        # Pushes waiting for the snapshot being read, the newest per SKU (None: not reading).
        self.held: dict[int, dict] | None = None
        await self.accept()

    async def live_stock(self, event: dict) -> None:
        key = event["key"]
        if self.held is not None:
            waiting = self.held.get(key)
            if waiting is None or event["version"] > waiting["version"]:
                self.held[key] = event
            return
        if key not in self.subscribed or self.closing:
            return
        if event["version"] <= self.versions.get(key, 0):
            return
        self.versions[key] = event["version"]
        await self.send(text_data=event["text"])

    async def on_subscribe(self, message: dict) -> None:
        names = _names(message)
        if names is None:
            return await self.error(
                "bad_message",
                'Send {"type": "subscribe", "skus": ["SKU", …], "products": [id, …]}.',
            )
        skus, product_ids = names
        limit = settings.LIVE_MAX_SUBSCRIPTIONS
        refusal = (
            f"A socket follows at most {limit} SKUs; it follows {len(self.subscribed)}. "
            "Nothing was added."
        )
        if len(skus) + len(product_ids) > limit:
            return await self.error("too_many_subscriptions", refusal)
        found = await database_sync_to_async(selectors.variants_named)(
            skus=skus, product_ids=product_ids
        )
        new = {vid: sku for vid, sku in found.items() if vid not in self.subscribed}
        if len(self.subscribed) + len(new) > limit:
            return await self.error("too_many_subscriptions", refusal)
        self.held = {}
        try:
            for vid in new:
                await self.hub.join(vid, self)
                self.subscribed[vid] = new[vid]
        except LAYER_ERRORS as error:  # fail open: the shop goes on, this socket retries later
            logger.warning("live: could not follow SKUs (%s)", type(error).__name__)
            self.held = None
            await self.close_with(CLOSE_TRY_AGAIN_LATER)
            return
        unknown = sorted(set(skus) - set(found.values()))
        await self.snapshot_send({}, unknown=unknown)

    async def on_unsubscribe(self, message: dict) -> None:
        names = _names(message)
        if names is None:
            return await self.error(
                "bad_message",
                'Send {"type": "unsubscribe", "skus": ["SKU", …], "products": [id, …]}.',
            )
        skus, product_ids = names
        found = await database_sync_to_async(selectors.variants_named)(
            skus=skus, product_ids=product_ids
        )
        gone = [vid for vid in found if vid in self.subscribed]
        for vid in gone:
            del self.subscribed[vid]
            self.versions.pop(vid, None)
            await self.hub.leave(vid, self)
        await self.snapshot_send({})

    async def snapshot_send(self, message: dict, *, unknown: list[str] | None = None) -> None:
        if self.held is None:
            self.held = {}
        try:
            states = await database_sync_to_async(selectors.stock_states)(
                variant_ids=list(self.subscribed)
            )
            for state in states:
                self.versions[state.variant_id] = max(
                    state.version, self.versions.get(state.variant_id, 0)
                )
            snapshot: dict[str, Any] = {
                "type": "snapshot",
                "stock": [s.message() for s in states],
            }
            if unknown:
                snapshot["unknown"] = unknown
            await self.send_json(snapshot)
        finally:
            held, self.held = self.held, None
        for event in held.values():
            await self.live_stock(event)

    async def layer_lost(self) -> None:
        """The hub lost the channel layer: pushes may be missing, so come back later for a
        fresh snapshot."""
        self.subscribed.clear()
        await self.close_with(CLOSE_TRY_AGAIN_LATER)

    async def disconnect(self, code: int | None) -> None:
        for vid in list(getattr(self, "subscribed", ())):
            await self.hub.leave(vid, self)
        self.subscribed = {}


def _names(message: dict) -> tuple[list[str], list[int]] | None:
    """The SKUs and product ids a (un)subscribe names, or None when malformed."""
    skus = message.get("skus", [])
    products = message.get("products", [])
    if not isinstance(skus, list) or not isinstance(products, list) or not (skus or products):
        return None
    if not all(isinstance(sku, str) and 0 < len(sku) <= 64 for sku in skus):
        return None
    if not all(isinstance(pk, int) and not isinstance(pk, bool) and pk > 0 for pk in products):
        return None
    return skus, products
