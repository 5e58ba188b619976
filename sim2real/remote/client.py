"""A client of the openpi websocket protocol, with connect and reply timeouts.

On connect the server sends one binary frame, a msgpack dict of metadata; each request is then
a binary frame holding a msgpack-numpy dict (:mod:`sim2real.remote.wire`), answered by a binary
frame holding a dict; a text frame is the server's error message. With an API key the client
sends the header ``Authorization: Api-Key <key>``, as openpi's client does.

Every failure is a :class:`RemoteError` subclass whose message names the server; the client
never waits longer than its connect timeout (connection and metadata) or its reply timeout (one
reply); it sends no keepalive pings (a server busy computing a reply may not answer them; the
reply timeout is the liveness check). After a failure it is closed (``connected`` is False)
until :meth:`connect` again.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection, connect

from sim2real.errors import Sim2RealError
from sim2real.remote.wire import WireError, packb, unpackb

#: HTTP statuses of a handshake refused for its credentials
_AUTH_STATUSES = (401, 403)
#: websocket close code of a connection refused by policy (e.g. a bad API key after the handshake)
_POLICY_VIOLATION = 1008


class RemoteError(Sim2RealError):
    """The server could not be reached or did not answer as the protocol says."""


class ServerUnreachableError(RemoteError):
    """No websocket server answered at the address within the connect timeout."""


class ApiKeyRejectedError(RemoteError):
    """The server refused the connection for its API key (HTTP 401/403, or close code 1008)."""


class ServerError(RemoteError):
    """The server sent a text frame: its error message."""


class ConnectionLostError(RemoteError):
    """The connection closed while a message was expected."""


class ReplyTimeoutError(RemoteError):
    """No reply within the reply timeout."""


class BadReplyError(RemoteError):
    """A reply that is not a msgpack dict."""


def server_uri(host: str, port: int | None) -> str:
    """``ws://host:port``; a host that starts with ``ws`` is taken as a URI (port appended when given)."""
    uri = host if host.startswith("ws") else f"ws://{host}"
    return uri if port is None else f"{uri}:{port}"


def _first_line(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else "(empty message)"  # a traceback's last line says what failed
    return line if len(line) <= limit else line[: limit - 3] + "..."


class RemotePolicyClient:
    """One connection to a policy server.

    Args:
        uri: ``ws://host:port`` (see :func:`server_uri`).
        api_key: sent as ``Authorization: Api-Key <key>`` when given.
        connect_timeout: seconds for the TCP + websocket handshake, and again for the metadata.
        reply_timeout: seconds to wait for each reply.
        max_message_bytes: the largest reply accepted (None: no limit).
    """

    def __init__(
        self,
        uri: str,
        api_key: str | None = None,
        connect_timeout: float = 10.0,
        reply_timeout: float = 30.0,
        max_message_bytes: int | None = 256 * 2**20,
    ) -> None:
        if connect_timeout <= 0 or reply_timeout <= 0:
            raise ValueError("connect_timeout and reply_timeout must be > 0 seconds")
        self.uri, self.connect_timeout, self.reply_timeout = uri, connect_timeout, reply_timeout
        self.max_message_bytes = max_message_bytes
        self._api_key = api_key
        self._connection: ClientConnection | None = None
        self._stack = ExitStack()
        self.metadata: dict[str, Any] = {}

    @property
    def connected(self) -> bool:
        return self._connection is not None

    def connect(self) -> dict[str, Any]:
        """Open a connection (closing any open one) and return the server's metadata dict."""
        self.close()
        headers = {"Authorization": f"Api-Key {self._api_key}"} if self._api_key else None
        try:
            # entered as a context manager: websockets >= 17.1 connects on entry (and warns otherwise),
            # older versions return a connected ClientConnection, itself a context manager
            connection = self._stack.enter_context(
                connect(self.uri, open_timeout=self.connect_timeout, close_timeout=1.0, additional_headers=headers,
                        compression=None, max_size=self.max_message_bytes, ping_interval=None)
            )  # fmt: skip
        except InvalidStatus as error:
            status = error.response.status_code
            if status in _AUTH_STATUSES:
                hint = "" if self._api_key else "; it needs policy.api_key"
                raise ApiKeyRejectedError(f"{self.uri} refused the API key (HTTP {status}){hint}") from None
            raise ServerUnreachableError(f"{self.uri} refused the websocket handshake (HTTP {status})") from None
        except InvalidURI as error:
            raise ServerUnreachableError(f"{self.uri} is not a websocket address ({error})") from None
        except TimeoutError:
            raise ServerUnreachableError(
                f"no policy server answered at {self.uri} within {self.connect_timeout:g} s"
            ) from None
        except (OSError, InvalidHandshake) as error:
            raise ServerUnreachableError(f"no policy server at {self.uri} ({error})") from None
        self._connection = connection
        metadata = self._receive(self.connect_timeout, "the metadata")
        self.metadata = metadata
        return metadata

    def infer(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send ``request`` (a dict of numpy arrays, numbers, strings) and return the reply dict,
        waiting at most ``timeout`` seconds (None: the reply timeout)."""
        if self._connection is None:
            raise ConnectionLostError(f"not connected to {self.uri}")
        try:
            self._connection.send(packb(request))
        except ConnectionClosed as error:
            self.close()
            raise ConnectionLostError(f"{self.uri} closed the connection ({_close_reason(error)})") from None
        return self._receive(timeout or self.reply_timeout, "a reply")

    def close(self) -> None:
        self._connection = None
        self._stack.close()

    def _receive(self, timeout: float, what: str) -> dict[str, Any]:
        assert self._connection is not None
        try:
            message = self._connection.recv(timeout=timeout)
        except TimeoutError:
            self.close()  # a late answer would be taken for the next one
            raise ReplyTimeoutError(f"{self.uri} sent no {what.removeprefix('a ').removeprefix('the ')} within "
                               f"{timeout:g} s") from None  # fmt: skip
        except ConnectionClosed as error:
            self.close()
            code = error.rcvd.code if error.rcvd is not None else None
            if code == _POLICY_VIOLATION:
                raise ApiKeyRejectedError(f"{self.uri} closed the connection: {_close_reason(error)}") from None
            raise ConnectionLostError(
                f"{self.uri} closed the connection before {what} ({_close_reason(error)})"
            ) from None
        if isinstance(message, str):
            self.close()
            raise ServerError(f"{self.uri} answered with an error: {_first_line(message)}")
        try:
            return unpackb(message, self.max_message_bytes)
        except WireError as error:
            self.close()
            raise BadReplyError(f"{self.uri} sent {what} that is not a msgpack dict: {error}") from None

    def __enter__(self) -> RemotePolicyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_reason(error: ConnectionClosed) -> str:
    frame = error.rcvd
    if frame is None:
        return "no close frame"
    return f"code {frame.code}" + (f": {frame.reason}" if frame.reason else "")
