import asyncio
import base64
import enum
import json
import random
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NotRequired, TypeAlias, TypedDict, cast
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

JsonValue: TypeAlias = (
    None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]
)
"""Any JSON value."""

JsonObject: TypeAlias = dict[str, JsonValue]
"""A JSON object."""


class CloseKind(enum.Enum):
    """Why the gateway (or the network) closed the connection, by close code."""

    NORMAL = "normal"
    GOING_AWAY = "goingAway"
    PROTOCOL_ERROR = "protocolError"
    UNSUPPORTED_DATA = "unsupportedData"
    NO_STATUS = "noStatus"
    ABNORMAL = "abnormal"
    INVALID_PAYLOAD = "invalidPayload"
    POLICY_VIOLATION = "policyViolation"
    MESSAGE_TOO_BIG = "messageTooBig"
    INTERNAL_ERROR = "internalError"
    TRY_AGAIN_LATER = "tryAgainLater"
    APPLICATION = "application"
    OTHER = "other"


_KINDS = {
    1000: CloseKind.NORMAL,
    1001: CloseKind.GOING_AWAY,
    1002: CloseKind.PROTOCOL_ERROR,
    1003: CloseKind.UNSUPPORTED_DATA,
    1005: CloseKind.NO_STATUS,
    1006: CloseKind.ABNORMAL,
    1007: CloseKind.INVALID_PAYLOAD,
    1008: CloseKind.POLICY_VIOLATION,
    1009: CloseKind.MESSAGE_TOO_BIG,
    1011: CloseKind.INTERNAL_ERROR,
    1013: CloseKind.TRY_AGAIN_LATER,
}


def close_kind(code: int) -> CloseKind:
    """The kind of a close code, as wsgate uses them.

    1000 normal close (also `DELETE @connections/{id}`), 1001 idle timeout, maximum
    duration or shutdown, 1002 protocol violation, 1003 binary frame refused, 1005 no
    code, 1006 connection lost, 1007 invalid UTF-8, 1008 policy, 1009 frame or message
    too big, 1011 ping timeout or internal error, 1013 slow consumer, 3000-4999 a code
    given to `DELETE @connections/{id}?code=`.
    """
    if code in _KINDS:
        return _KINDS[code]
    return CloseKind.APPLICATION if 3000 <= code <= 4999 else CloseKind.OTHER


class CloseError(Exception):
    """The connection closed: its code, reason and kind."""

    def __init__(self, code: int, reason: str) -> None:
        detail = f" ({reason})" if reason else ""
        super().__init__(f"connection closed with {code}{detail}")
        self.code = code
        self.reason = reason
        self.kind = close_kind(code)


class NotConnectedError(Exception):
    """A message was sent while no connection was open."""


class ReplyTimeoutError(Exception):
    """A two-way route's reply did not arrive within the request timeout."""

    def __init__(self, route_key: str, timeout: float) -> None:
        super().__init__(f"no reply to {route_key} within {timeout} s")
        self.route_key = route_key


class AckError(Exception):
    """A message of an acknowledged route was refused for good (a nack, not retryable)."""

    def __init__(self, message_id: str | int, message: str, request_id: str) -> None:
        super().__init__(f"message {json.dumps(message_id)} refused: {message}")
        self.id = message_id
        self.request_id = request_id


class GatewayErrorFrame(TypedDict):
    """An error frame of the gateway (`{"message": "Forbidden", ...}`)."""

    message: str
    connectionId: str
    requestId: NotRequired[str]
    messageId: NotRequired[str]


@dataclass
class Reconnect:
    """Reconnection: exponential backoff with equal jitter, from `base` up to `max` s."""

    enabled: bool = True
    base: float = 0.5
    max: float = 15.0
    max_attempts: int | None = None


def backoff_delay(attempt: int, base: float, maximum: float) -> float:
    """Half the capped exponential delay plus a random half."""
    capped = min(maximum, base * 2.0**attempt)
    return capped / 2 + random.random() * (capped / 2)


@dataclass
class AckOptions:
    """Resending the messages of acknowledged routes (`ack:` in the configuration)."""

    retry_base: float = 0.5
    """First delay (s) before resending after a retryable nack or `pending`."""
    retry_max: float = 15.0
    """Largest such delay (s)."""
    max_unacked: int = 1000
    """Most messages kept until their ack; more are refused at once."""


@dataclass
class _Unacked:
    """A message of an acknowledged route waiting for its ack."""

    text: str
    done: asyncio.Future[None]
    attempt: int = 0
    timer: asyncio.TimerHandle | None = None


@dataclass
class _AckFrame:
    """An acknowledged route's answer to one message."""

    kind: Literal["ack", "pending", "nack"]
    id: str | int
    retryable: bool = True
    message: str = ""
    request_id: str = ""


_NACK_KEYS = {"nack", "retryable", "message", "requestId"}


def _ack_frame(value: dict[str, JsonValue]) -> _AckFrame | None:
    """`{"ack": ID}`, `{"pending": ID}` or `{"nack": ID, "retryable": B, ...}`."""
    keys = set(value)
    for kind in ("ack", "pending", "nack"):
        if kind not in value:
            continue
        found = value[kind]
        if isinstance(found, bool) or not isinstance(found, (str, int)):
            return None
        if kind == "ack" and keys == {"ack"}:
            return _AckFrame("ack", found)
        if kind == "pending" and keys == {"pending"}:
            return _AckFrame("pending", found)
        retryable = value.get("retryable")
        if kind == "nack" and keys == _NACK_KEYS and isinstance(retryable, bool):
            message, request_id = value["message"], value["requestId"]
            return _AckFrame("nack", found, retryable, str(message), str(request_id))
        return None
    return None


@dataclass
class Position:
    """Where a client stands in a group with history: the last message it received."""

    group: str
    epoch: str
    """The history's epoch: offsets only mean something within one epoch."""
    offset: int
    """The offset of the last message received."""


@dataclass
class GroupMessage:
    """A message of a group with history, unwrapped from the gateway's envelope."""

    group: str
    epoch: str
    offset: int
    data: JsonValue
    """The payload, parsed as JSON."""


@dataclass
class RecoveredSignal:
    """The replay after a reconnect is complete: every message missed came, once."""

    group: str
    epoch: str
    offset: int
    replayed: int


@dataclass
class NotRecoveredSignal:
    """The history did not cover what the client missed: refetch the state.

    `reason`: epoch_changed, trimmed, too_far, unknown_offset, overflow, unavailable or
    no_history. `epoch` and `offset` are the current position when known; live messages
    follow.
    """

    group: str
    reason: str
    epoch: str | None
    offset: int | None


@dataclass
class Handlers:
    """What to call when something happens on the connection."""

    on_push: Callable[[JsonValue], None] | None = None
    """A message pushed by a backend (a post, a group post, a broadcast)."""
    on_group_message: Callable[[GroupMessage], None] | None = None
    """With `recover`: a message of a group with history, with its position.

    Without this handler its data goes to `on_push`.
    """
    on_recovered: Callable[[RecoveredSignal], None] | None = None
    """With `recover`: the messages missed while disconnected were replayed."""
    on_not_recovered: Callable[[NotRecoveredSignal], None] | None = None
    """With `recover`: what was missed could not be replayed; refetch the state."""
    on_raw: Callable[[str | bytes], None] | None = None
    """A text frame that is not JSON, or a binary frame (also such group payloads)."""
    on_gateway_error: Callable[[GatewayErrorFrame], None] | None = None
    """An error frame of the gateway."""
    on_open: Callable[[], None] | None = None
    """A connection opened (the first one and every reconnection)."""
    on_close: Callable[[CloseError, float | None], None] | None = None
    """A connection closed; the delay before the next attempt, or None."""


@dataclass
class Placement:
    """Where credentials go on the upgrade request."""

    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    protocols: list[str] = field(default_factory=list)


_ERROR_KEYS = {"message", "connectionId", "requestId", "messageId"}


def _is_gateway_error(value: JsonValue) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("message"), str)
        and isinstance(value.get("connectionId"), str)
        and set(value) <= _ERROR_KEYS
    )


class Connection:
    """One logical connection to a wsgate stage.

    Opens the socket, reconnects with backoff, sends route messages and matches two-way
    replies to their requests by the correlation field.
    """

    def __init__(
        self,
        url: str,
        route_field: str,
        correlation_field: str,
        placement: Placement,
        *,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        protocols: list[str] | None = None,
        reconnect: Reconnect | None = None,
        request_timeout: float = 30.0,
        acks: AckOptions | None = None,
        recover: bool = False,
        recover_from: Sequence[Position] = (),
    ) -> None:
        """`acks`: resending the messages of acknowledged routes; `recover`: connect
        with `envelope=1`, keep the last position of every group with history and on
        reconnect ask for what was missed (`recover=`); `recover_from`: positions to
        start from (as `positions` returned them)."""
        self._url = url
        self._route_field = route_field
        self._correlation_field = correlation_field
        self._headers = {**placement.headers, **(headers or {})}
        self._query = {**placement.query, **(query or {})}
        self._protocols = [*placement.protocols, *(protocols or [])]
        self._reconnect = reconnect or Reconnect()
        self._request_timeout = request_timeout
        self._handlers = Handlers()
        self._socket: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._wanted = False
        self._waiters: list[asyncio.Future[None]] = []
        self._pending: dict[str, asyncio.Future[JsonValue]] = {}
        self._acks = acks or AckOptions()
        self._unacked: dict[str, _Unacked] = {}
        self._resends: set[asyncio.Task[None]] = set()
        self._prefix = secrets.token_hex(4)
        self._counter = 0
        self._recover = recover
        self._positions = {
            p.group: Position(p.group, p.epoch, p.offset) for p in recover_from
        }

    def on(self, handlers: Handlers) -> None:
        """Sets the handlers (replacing earlier ones)."""
        self._handlers = handlers

    @property
    def positions(self) -> list[Position]:
        """With `recover`: the last position of every group with history seen so far."""
        return [Position(p.group, p.epoch, p.offset) for p in self._positions.values()]

    @property
    def connected(self) -> bool:
        """True while a socket is open."""
        return self._socket is not None

    async def connect(self) -> None:
        """Opens the connection and returns once it is open.

        Raises CloseError when the first attempt fails; reconnection then goes on in the
        background unless disabled.
        """
        self._wanted = True
        if self._socket is not None:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        await waiter

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Closes the connection for good (no reconnection)."""
        self._wanted = False
        socket = self._socket
        if socket is not None:
            await socket.close(code, reason)
        task = self._task
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._task = None
        self._fail(CloseError(code, reason))
        self._fail_unacked(CloseError(code, reason))

    async def send(self, route_key: str | None, body: Mapping[str, object]) -> None:
        """Sends a message to `route_key` (None sends the body as it is)."""
        message = dict(body)
        if route_key is not None:
            message[self._route_field] = route_key
        await self._write(json.dumps(message))

    async def request(
        self,
        route_key: str | None,
        body: Mapping[str, object],
        ack_field: str | None = None,
    ) -> JsonValue:
        """Sends a two-way message; returns the reply that echoes its correlation id.

        On an acknowledged route, `ack_field` (a top-level field) gets the same id, so
        the ack frame is recognised and dropped.
        """
        self._counter += 1
        request_id = f"{self._prefix}-{self._counter}"
        message = {**body, self._correlation_field: request_id}
        if ack_field is not None and ack_field not in message:
            message[ack_field] = request_id
        if route_key is not None:
            message[self._route_field] = route_key
        reply: asyncio.Future[JsonValue] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = reply
        try:
            await self._write(json.dumps(message))
            return await asyncio.wait_for(reply, self._request_timeout)
        except TimeoutError:
            raise ReplyTimeoutError(
                route_key or "$default", self._request_timeout
            ) from None
        finally:
            self._pending.pop(request_id, None)

    async def send_acked(
        self,
        route_key: str | None,
        body: Mapping[str, object],
        id_path: Sequence[str],
    ) -> None:
        """Sends a message of an acknowledged route; returns once the gateway acked it.

        The message id at `id_path` is filled in when absent (a string unique to this
        client). The message is kept until its ack: sent again after a reconnect, and
        after a retryable nack or `pending` (with backoff); a nack that is not
        retryable raises AckError, closing the client raises its CloseError. A message
        sent while no connection is open goes out once one is. Cancelling the call
        stops the resends.
        """
        message: dict[str, object] = dict(body)
        if route_key is not None:
            message[self._route_field] = route_key
        holder = message
        for name in id_path[:-1]:
            inner = holder.get(name)
            copied: dict[str, object] = dict(inner) if isinstance(inner, dict) else {}
            holder[name] = copied
            holder = copied
        last = id_path[-1] if id_path else "id"
        given = holder.get(last)
        if isinstance(given, (str, int)) and not isinstance(given, bool):
            message_id: str | int = given
        else:
            self._counter += 1
            message_id = f"{self._prefix}-{self._counter}"
        holder[last] = message_id
        key = json.dumps(message_id)
        if len(self._unacked) >= self._acks.max_unacked or key in self._unacked:
            raise ValueError(
                f"message {key} not sent: too many unacknowledged messages,"
                " or one with its id"
            )
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = _Unacked(json.dumps(message), done)
        self._unacked[key] = entry
        try:
            await self._send_quietly(entry.text)
            await done
        finally:
            if self._unacked.get(key) is entry:
                self._forget(key, entry)

    @property
    def unacknowledged(self) -> int:
        """Messages sent on acknowledged routes and not acknowledged yet."""
        return len(self._unacked)

    async def _send_quietly(self, text: str) -> None:
        """Sends when a socket is open; otherwise (or when it closes) the next open does."""
        socket = self._socket
        if socket is None:
            return
        try:
            await socket.send(text)
        except ConnectionClosed:
            pass

    def _forget(self, key: str, entry: _Unacked) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
        self._unacked.pop(key, None)

    async def _resend_unacked(self) -> None:
        for entry in list(self._unacked.values()):
            if entry.timer is not None:
                entry.timer.cancel()
                entry.timer = None
            await self._send_quietly(entry.text)

    def _fail_unacked(self, error: Exception) -> None:
        for key, entry in list(self._unacked.items()):
            self._forget(key, entry)
            if not entry.done.done():
                entry.done.set_exception(error)

    def _resend_later(self, key: str, entry: _Unacked) -> None:
        entry.timer = None
        if self._unacked.get(key) is entry and self._socket is not None:
            task = asyncio.get_running_loop().create_task(
                self._send_quietly(entry.text)
            )
            self._resends.add(task)
            task.add_done_callback(self._resends.discard)

    def _acknowledged(self, value: dict[str, JsonValue]) -> bool:
        """Handles an ack, nack or pending frame; False when it is none of this client's."""
        frame = _ack_frame(value)
        if frame is None:
            return False
        key = json.dumps(frame.id)
        entry = self._unacked.get(key)
        if entry is None:
            # A late answer to one of this client's messages (acknowledged already).
            return isinstance(frame.id, str) and frame.id.startswith(self._prefix + "-")
        if frame.kind == "ack":
            self._forget(key, entry)
            if not entry.done.done():
                entry.done.set_result(None)
        elif frame.kind == "nack" and not frame.retryable:
            self._forget(key, entry)
            if not entry.done.done():
                refused = AckError(frame.id, frame.message, frame.request_id)
                entry.done.set_exception(refused)
        elif entry.timer is None:
            acks = self._acks
            delay = backoff_delay(entry.attempt, acks.retry_base, acks.retry_max)
            entry.attempt += 1
            loop = asyncio.get_running_loop()
            entry.timer = loop.call_later(delay, self._resend_later, key, entry)
        return True

    async def _write(self, text: str) -> None:
        socket = self._socket
        if socket is None:
            raise NotConnectedError("not connected")
        try:
            await socket.send(text)
        except ConnectionClosed as closed:
            raise NotConnectedError("not connected") from closed

    def _target(self) -> str:
        query = dict(self._query)
        if self._recover:
            positions = [
                f"{p.group}:{p.epoch}:{p.offset}" for p in self._positions.values()
            ]
            if positions:
                query["recover"] = ",".join(positions)
            else:
                query["envelope"] = "1"
        if not query:
            return self._url
        joiner = "&" if "?" in self._url else "?"
        return self._url + joiner + urlencode(sorted(query.items()))

    def _fail(self, error: Exception) -> None:
        for reply in self._pending.values():
            if not reply.done():
                reply.set_exception(error)
        self._pending.clear()

    async def _run(self) -> None:
        attempt = 0
        while self._wanted:
            code, reason = 1006, ""
            try:
                async with ws_connect(
                    self._target(),
                    additional_headers=self._headers,
                    subprotocols=[Subprotocol(p) for p in self._protocols] or None,
                ) as socket:
                    self._socket = socket
                    attempt = 0
                    await self._resend_unacked()
                    for waiter in self._waiters:
                        if not waiter.done():
                            waiter.set_result(None)
                    self._waiters.clear()
                    if self._handlers.on_open is not None:
                        self._handlers.on_open()
                    try:
                        async for data in socket:
                            self._receive(data)
                    except ConnectionClosed:
                        pass
                    code = socket.close_code if socket.close_code is not None else 1006
                    reason = socket.close_reason or ""
            except InvalidStatus as refused:
                reason = f"HTTP {refused.response.status_code}"
            except (OSError, InvalidHandshake, TimeoutError) as failed:
                reason = str(failed)
            finally:
                self._socket = None
            error = CloseError(code, reason)
            self._fail(error)
            delay: float | None = None
            settings = self._reconnect
            limit = settings.max_attempts
            if self._wanted and settings.enabled and (limit is None or attempt < limit):
                delay = backoff_delay(attempt, settings.base, settings.max)
                attempt += 1
            else:
                self._wanted = False
                self._fail_unacked(error)
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_exception(error)
            self._waiters.clear()
            if self._handlers.on_close is not None:
                self._handlers.on_close(error, delay)
            if delay is None:
                break
            await asyncio.sleep(delay)
        self._task = None

    def _receive(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            if self._handlers.on_raw is not None:
                self._handlers.on_raw(data)
            return
        try:
            value = cast(JsonValue, json.loads(data))
        except ValueError:
            if self._handlers.on_raw is not None:
                self._handlers.on_raw(data)
            return
        if isinstance(value, dict):
            if self._recover and self._recovery_frame(value):
                return
            if self._acknowledged(value):
                return
            request_id = value.get(self._correlation_field)
            if isinstance(request_id, str) and request_id in self._pending:
                reply = self._pending.pop(request_id)
                if not reply.done():
                    reply.set_result(value)
                return
            if _is_gateway_error(value):
                if self._handlers.on_gateway_error is not None:
                    self._handlers.on_gateway_error(cast(GatewayErrorFrame, value))
                return
        if self._handlers.on_push is not None:
            self._handlers.on_push(value)

    def _recovery_frame(self, value: dict[str, JsonValue]) -> bool:
        """Handles an envelope or a recovery signal; False when the frame is neither."""
        kind, group = value.get("type"), value.get("group")
        epoch, offset = value.get("epoch"), value.get("offset")
        if not isinstance(group, str) or isinstance(offset, bool):
            return False
        keys = set(value)
        reason = value.get("reason")
        if (
            kind == "notRecovered"
            and keys == {"type", "group", "reason", "epoch", "offset"}
            and isinstance(reason, str)
            and (epoch is None or isinstance(epoch, str))
            and (offset is None or isinstance(offset, int))
        ):
            if isinstance(epoch, str) and isinstance(offset, int):
                self._positions[group] = Position(group, epoch, offset)
            else:
                self._positions.pop(group, None)
            if self._handlers.on_not_recovered is not None:
                lost = NotRecoveredSignal(group, reason, epoch, offset)
                self._handlers.on_not_recovered(lost)
            return True
        if not isinstance(epoch, str) or not isinstance(offset, int):
            return False
        replayed = value.get("replayed")
        if (
            kind == "recovered"
            and keys == {"type", "group", "epoch", "offset", "replayed"}
            and isinstance(replayed, int)
        ):
            known = self._positions.get(group)
            if known is None or known.epoch != epoch or known.offset < offset:
                self._positions[group] = Position(group, epoch, offset)
            if self._handlers.on_recovered is not None:
                done = RecoveredSignal(group, epoch, offset, replayed)
                self._handlers.on_recovered(done)
            return True
        payload = keys - {"type", "group", "epoch", "offset"}
        if kind != "message" or payload not in ({"data"}, {"dataBase64"}):
            return False
        known = self._positions.get(group)
        if known is not None and known.epoch == epoch and offset <= known.offset:
            return True  # Received already.
        self._positions[group] = Position(group, epoch, offset)
        encoded = value.get("dataBase64")
        if isinstance(encoded, str):
            if self._handlers.on_raw is not None:
                self._handlers.on_raw(base64.b64decode(encoded))
            return True
        text = str(value.get("data"))
        try:
            data = cast(JsonValue, json.loads(text))
        except ValueError:
            if self._handlers.on_raw is not None:
                self._handlers.on_raw(text)
            return True
        if self._handlers.on_group_message is not None:
            message = GroupMessage(group, epoch, offset, data)
            self._handlers.on_group_message(message)
        elif self._handlers.on_push is not None:
            self._handlers.on_push(data)
        return True
