import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, NotRequired, TypeAlias, TypedDict, cast
from urllib.parse import quote, urlencode, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

JsonValue: TypeAlias = (
    None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]
)
"""Any JSON value."""

PushBody: TypeAlias = str | bytes | JsonValue
"""A message body: text and bytes go as they are, anything else as JSON."""


@dataclass(frozen=True)
class Bearer:
    """`Authorization: Bearer <token>` (`callback.auth: {kind: bearer}`)."""

    token: str


@dataclass(frozen=True)
class SigV4:
    """AWS Signature V4, service `execute-api` (`callback.auth: {kind: sigv4}`)."""

    region: str
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


CallbackAuth: TypeAlias = Bearer | SigV4 | None
"""How the callback API is authenticated; None for loopback or `kind: none`."""


class CallbackError(Exception):
    """A callback API call failed: its HTTP status, error name and message."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(f"{status} {error_type}: {message}")
        self.status = status
        self.error_type = error_type
        self.message = message

    @property
    def gone(self) -> bool:
        """The connection is unknown or closed (410)."""
        return self.status == 410


class Identity(TypedDict):
    """Who opened a connection."""

    sourceIp: str
    userAgent: NotRequired[str]


class ConnectionInfo(TypedDict):
    """`GET @connections/{id}`."""

    connectedAt: str
    lastActiveAt: str
    identity: Identity


class PostResult(TypedDict):
    """The answer of a group post or a broadcast."""

    deliveredLocal: int
    droppedLocal: int
    published: bool
    remoteNodes: int
    epoch: NotRequired[str]
    """A post to a group with history: its position (with `offset`)."""
    offset: NotRequired[int]


class GroupPage(TypedDict):
    """A page of a group's members."""

    group: str
    memberCount: int
    members: list[str]
    nextToken: NotRequired[str]


class ConnectionPage(TypedDict):
    """A page of the stage's connections."""

    connectionCount: int
    connections: list[str]
    nextToken: NotRequired[str]


def _encode(body: PushBody) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def _page(max_results: int | None, next_token: str | None) -> dict[str, str]:
    query: dict[str, str] = {}
    if max_results is not None:
        query["maxResults"] = str(max_results)
    if next_token is not None:
        query["nextToken"] = next_token
    return query


class _Base:
    """The callback API of one stage (blocking calls; run them in a thread from asyncio).

    `endpoint` is the callback API's base URL without the stage, e.g.
    `https://gateway.example.com` (`http://127.0.0.1:9080` for `callback.listen`).
    """

    def __init__(
        self, endpoint: str, stage: str, auth: CallbackAuth, timeout: float = 10.0
    ) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._stage = stage
        self._auth = auth
        self._timeout = timeout

    def post(self, connection_id: str, body: PushBody) -> None:
        """Sends `body` to one connection (`POST @connections/{id}`)."""
        self._call("POST", ["@connections", connection_id], {}, _encode(body))

    def get(self, connection_id: str) -> ConnectionInfo:
        """The connection's times and identity (`GET @connections/{id}`)."""
        return cast(
            ConnectionInfo, self._json("GET", ["@connections", connection_id], {})
        )

    def delete(
        self, connection_id: str, code: int | None = None, reason: str | None = None
    ) -> None:
        """Closes a connection (`DELETE @connections/{id}`), code 1000 or 3000-4999."""
        query: dict[str, str] = {}
        if code is not None:
            query["code"] = str(code)
        if reason is not None:
            query["reason"] = reason
        self._call("DELETE", ["@connections", connection_id], query, None)

    def join(self, connection_id: str, group: str) -> None:
        """Puts a connection in a group."""
        self._call("PUT", ["@connections", connection_id, "groups", group], {}, None)

    def leave(self, connection_id: str, group: str) -> None:
        """Takes a connection out of a group."""
        self._call("DELETE", ["@connections", connection_id, "groups", group], {}, None)

    def groups_of(self, connection_id: str) -> list[str]:
        """The groups of a connection."""
        answer = self._json("GET", ["@connections", connection_id, "groups"], {})
        return cast(dict[str, list[str]], answer)["groups"]

    def post_to_group(
        self, group: str, body: PushBody, exclude: str | None = None
    ) -> PostResult:
        """Sends `body` to every member of a group, except `exclude`."""
        query = {} if exclude is None else {"exclude": exclude}
        answer = self._json("POST", ["@groups", group], query, _encode(body))
        return cast(PostResult, answer)

    def broadcast(self, body: PushBody, exclude: str | None = None) -> PostResult:
        """Sends `body` to every connection of the stage, except `exclude`."""
        query = {} if exclude is None else {"exclude": exclude}
        return cast(
            PostResult, self._json("POST", ["@broadcast"], query, _encode(body))
        )

    def members(
        self, group: str, max_results: int | None = None, next_token: str | None = None
    ) -> GroupPage:
        """One page of a group's members."""
        query = _page(max_results, next_token)
        return cast(GroupPage, self._json("GET", ["@groups", group], query))

    def connections(
        self, max_results: int | None = None, next_token: str | None = None
    ) -> ConnectionPage:
        """One page of the stage's connections."""
        query = _page(max_results, next_token)
        return cast(ConnectionPage, self._json("GET", ["@connections"], query))

    def _json(
        self,
        method: str,
        path: list[str],
        query: Mapping[str, str],
        body: bytes | None = None,
    ) -> JsonValue:
        return cast(JsonValue, json.loads(self._call(method, path, query, body)))

    def _call(
        self,
        method: str,
        path: list[str],
        query: Mapping[str, str],
        body: bytes | None,
    ) -> bytes:
        segments = [quote(part, safe="") for part in [self._stage, *path]]
        url = self._endpoint + "/" + "/".join(segments)
        if query:
            url += "?" + urlencode(sorted(query.items()))
        headers: dict[str, str] = {}
        if body is not None:
            headers["Content-Type"] = "application/octet-stream"
        auth = self._auth
        if isinstance(auth, Bearer):
            headers["Authorization"] = f"Bearer {auth.token}"
        elif isinstance(auth, SigV4):
            credentials = Credentials(
                auth.access_key_id, auth.secret_access_key, auth.session_token
            )
            signed = AWSRequest(
                method=method, url=url, data=body or b"", headers=headers
            )
            signed.headers["Host"] = urlsplit(url).netloc
            SigV4Auth(credentials, "execute-api", auth.region).add_auth(signed)
            headers = {key: str(value) for key, value in signed.headers.items()}
        request = urllib.request.Request(url, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return cast(bytes, response.read())
        except urllib.error.HTTPError as failed:
            text = failed.read().decode(errors="replace")
            try:
                message = str(json.loads(text).get("message", text))
            except (ValueError, AttributeError):
                message = text
            error_type = failed.headers.get("x-amzn-ErrorType", "UnknownError")
            raise CallbackError(failed.code, error_type, message) from None
