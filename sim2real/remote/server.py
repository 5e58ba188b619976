"""``sim2real serve``: a policy checkpoint over the openpi websocket protocol.

``sim2real serve --checkpoint PATH [--host 127.0.0.1] [--port 8000] [--api-key KEY]`` loads the
checkpoint once and answers any number of connections at once, each with its own policy state.

Protocol (openpi's; :mod:`sim2real.remote.wire` is the encoding):

* on connect the server sends one binary frame, the metadata dict (:meth:`LoadedPolicy.metadata`:
  policy type, action dimension, names and convention, chunk, cameras and image size, state
  dimension, control rate, the checkpoint's content hash, and the request keys below);
* each request is a binary msgpack dict: ``observation/image/<camera>`` uint8 (S, S, 3) for every
  camera the policy uses, ``observation/state`` float (14,) (float32 or float64), ``prompt`` str,
  and optionally ``reset: True``;
* the reply is a binary msgpack dict: ``actions`` float32 (1, 7) and ``server_timing``
  (``{"infer_ms": ...}``). ``actions[0]`` is the action to execute now, the policy's action
  selection (decoding, temporal ensemble, open-loop chunk execution) applied on the server, so a
  client that plays ``actions[0]`` each step gets exactly what ``act()`` returns in process. The
  reply holds that one row only (``action_horizon`` 1 in the metadata): the rest of a predicted
  chunk is not what the policy would play after a new observation, and a client must not play it
  open loop; ``execute_steps=k`` plays chunks open loop on the server instead;
* ``reset: True`` forgets the connection's history before the request's observation is used; a
  request holding nothing else is answered ``{"reset": True}``. A new connection starts reset;
* a text frame is an error: the request's key and what was expected (``observation/image/front:
  expected uint8 (128, 128, 3), got float32 (128, 128, 3)``). The connection stays open, its policy
  state as it was before the bad request, and every other connection is served as before.

Requests over ``max_message_bytes`` (by default twice a well-formed request plus 1 MiB) are answered
with an error frame; over four times that, the websocket layer closes the connection (close code
1009) without reading the rest. Bound to any address but loopback the server needs an API key:
clients send ``Authorization: Api-Key <key>`` (openpi-client's ``api_key=``); a missing key is
refused at the handshake with HTTP 401, a wrong one with 403.

Policy calls run in a thread pool (torch releases the GIL); the event loop only moves frames.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import hmac
import ipaddress
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from sim2real import __version__
from sim2real.errors import UsageError
from sim2real.evaluation.action_selection import CLOSED_LOOP_SELECTION
from sim2real.remote.wire import WireError, packb, unpackb

log = logging.getLogger(__name__)

#: request keys (the ``sim2real`` mapping of the remote client)
IMAGE_KEY_PREFIX = "observation/image/"
STATE_KEY = "observation/state"
PROMPT_KEY = "prompt"
RESET_KEY = "reset"
#: reply keys
ACTIONS_KEY = "actions"
TIMING_KEY = "server_timing"

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
#: the control rate a checkpoint is served at when its config names none (generate.py's ``control_hz``)
DEFAULT_CONTROL_HZ = 10.0
#: where ``sim2real serve`` reads the API key when ``--api-key`` is not given (keeps it out of ``ps``)
API_KEY_ENV = "SIM2REAL_API_KEY"
#: files that decide a checkpoint's actions: what the content hash covers
HASHED_FILES = ("config.json", "model.safetensors", "normalization.json", "tokenizer.json", "language_cache.npz")


class Policy(Protocol):
    """A stateful policy: ``reset()`` at episode start, then one ``act`` per control step."""

    def reset(self) -> None: ...

    def act(self, observation: Mapping[str, Any], instruction: str) -> np.ndarray: ...


class RequestError(ValueError):
    """A request the server cannot use; its message (key, expected, got) is the error frame."""


@dataclass(frozen=True)
class ObservationSpec:
    """What a request must hold: the policy's cameras at ``image_size``, and its state."""

    cameras: tuple[str, ...]
    image_size: tuple[int, int]
    state_dim: int
    state_required: bool = True

    def request_bytes(self) -> int:
        """Payload bytes of a well-formed request (images and state, without the prompt)."""
        height, width = self.image_size
        return len(self.cameras) * height * width * 3 + self.state_dim * 8


@dataclass
class LoadedPolicy:
    """A checkpoint loaded once: ``new_session()`` makes a fresh policy state sharing its weights."""

    new_session: Callable[[], Policy]
    spec: ObservationSpec
    info: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """The dict sent on connect."""
        height, width = self.spec.image_size
        return {
            **self.info,
            "cameras": list(self.spec.cameras),
            "image_size": height if height == width else [height, width],
            "state_dim": self.spec.state_dim,
            "action_horizon": 1,
            "request": {
                "images": {cam: f"{IMAGE_KEY_PREFIX}{cam}" for cam in self.spec.cameras},
                "image": f"uint8 ({height}, {width}, 3)",
                "state": STATE_KEY,
                "state_shape": f"float32 ({self.spec.state_dim},)",
                "prompt": PROMPT_KEY,
                "reset": RESET_KEY,
            },
            "reply": {
                ACTIONS_KEY: f"float32 (1, {self.info.get('action_dim', '?')}): actions[0] is the action to execute "
                "now (the policy's action selection applied on the server)"
            },
            "server": f"sim2real {__version__}",
        }


def checkpoint_hash(path: str | Path) -> str:
    """sha256 over the names and contents of the files that decide a checkpoint's actions
    (:data:`HASHED_FILES` that exist; training-resume files are left out)."""
    path = Path(path)
    digest = hashlib.sha256()
    for name in HASHED_FILES:
        file = path / name
        if not file.is_file():
            continue
        inner = hashlib.sha256()
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                inner.update(block)
        digest.update(f"{name}\0{inner.hexdigest()}\n".encode())
    return digest.hexdigest()


def open_policy(
    path: str | Path,
    *,
    temporal_ensemble: float | None = CLOSED_LOOP_SELECTION.temporal_ensemble,
    execute_steps: int = CLOSED_LOOP_SELECTION.execute_steps,
    decoding: str = CLOSED_LOOP_SELECTION.decoding,
    device: str = "cpu",
    control_hz: float | None = None,
) -> LoadedPolicy:
    """Load the checkpoint at ``path`` (any registered policy type) once, with the given action
    selection (the evaluation defaults unless set); each session is a policy object of its own
    over the same weights (:func:`fork_policy`).

    Raises :class:`~sim2real.policies.CheckpointError` for a missing or unusable checkpoint and
    :class:`~sim2real.errors.UsageError` naming the option for a selection the policy cannot use
    (before the weights are read).
    """
    from sim2real.policies import POLICIES, load_policy
    from sim2real.policies.checkpoint import read_meta
    from sim2real.policies.inference import check_action_selection

    meta = read_meta(path)
    try:
        chunk, decodings = int(meta["config"]["chunk"]), tuple(POLICIES.get(meta["policy"]).decodings)
    except (KeyError, TypeError, ValueError):
        chunk, decodings = 0, ()  # load_policy names what is wrong with the checkpoint
    if decodings:
        try:
            check_action_selection(chunk, execute_steps, temporal_ensemble, decoding, "--", decodings)
        except ValueError as error:
            raise UsageError(str(error).replace("_", "-").replace("=null", "=none")) from None
    template = load_policy(
        path, device=device, temporal_ensemble=temporal_ensemble, execute_steps=execute_steps, decoding=decoding
    )
    config = template.config
    described = template.describe()
    action = template.meta.get("action", {})
    info = {
        **described,
        "action_names": list(action.get("names", [])),
        "action_convention": action.get("convention", ""),
        "control_hz": float(control_hz or described.get("control_hz") or DEFAULT_CONTROL_HZ),
        "checkpoint_sha256": checkpoint_hash(path),
    }
    spec = ObservationSpec(
        cameras=tuple(config.cameras),
        image_size=(int(config.image_size), int(config.image_size)),
        state_dim=int(config.state_dim),
        state_required=bool(getattr(config, "use_proprio", True)),
    )
    shared = (template.model, template.tokenizer)
    return LoadedPolicy(new_session=lambda: fork_policy(template, shared), spec=spec, info=info)


def fork_policy(template: Policy, shared: tuple[Any, ...]) -> Policy:
    """A policy object of its own for one connection: a deep copy of ``template`` (never used to
    act, so in its reset state) that shares the ``shared`` objects (the model's weights, its
    tokenizer) instead of copying them, and touches nothing another connection is using."""
    return copy.deepcopy(template, {id(obj): obj for obj in shared})


# ------------------------------------------------------------------------------ requests
def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {tuple(value.shape)}"
    return type(value).__name__


def parse_request(message: Mapping[str, Any], spec: ObservationSpec) -> tuple[dict[str, Any] | None, str, bool]:
    """``(observation, prompt, reset)`` from a request dict; ``observation`` is None for a
    reset-only request. Raises :class:`RequestError` naming the first bad key and what it expects."""
    reset = message.get(RESET_KEY, False)
    if not isinstance(reset, bool | np.bool_):
        raise RequestError(f"{RESET_KEY}: expected true or false, got {_describe(reset)}")
    if reset and set(message) <= {RESET_KEY}:
        return None, "", True
    height, width = spec.image_size
    images = {}
    for cam in spec.cameras:
        key = f"{IMAGE_KEY_PREFIX}{cam}"
        expected = f"uint8 ({height}, {width}, 3)"
        if key not in message:
            raise RequestError(f"{key}: missing; expected {expected} (the request holds {sorted(message)})")
        image = message[key]
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape != (height, width, 3):
            raise RequestError(f"{key}: expected {expected}, got {_describe(image)}")
        images[cam] = image if image.flags.writeable else image.copy()  # torch wants writable memory
    observation: dict[str, Any] = {"image": images}
    expected = f"float32 ({spec.state_dim},)"
    if STATE_KEY in message:
        state = message[STATE_KEY]
        if not isinstance(state, np.ndarray) or state.dtype.kind != "f" or state.shape != (spec.state_dim,):
            raise RequestError(f"{STATE_KEY}: expected {expected}, got {_describe(state)}")
        observation["state"] = np.array(state, dtype=np.float32)  # a writable copy, as torch wants
    elif spec.state_required:
        raise RequestError(f"{STATE_KEY}: missing; expected {expected} (the request holds {sorted(message)})")
    prompt = message.get(PROMPT_KEY)
    if not isinstance(prompt, str):
        got = "missing" if prompt is None else f"got {_describe(prompt)}"
        raise RequestError(f"{PROMPT_KEY}: expected a str (the task instruction), {got}")
    return observation, prompt, bool(reset)


class Session:
    """One connection's policy state; requests of one connection are answered one at a time."""

    def __init__(self, loaded: LoadedPolicy, max_message_bytes: int) -> None:
        self.policy = loaded.new_session()
        self.spec = loaded.spec
        self.max_message_bytes = max_message_bytes

    def answer(self, frame: bytes | str) -> bytes | str:
        """The reply frame to ``frame``: binary msgpack, or a text frame naming what is wrong."""
        try:
            if isinstance(frame, str):
                raise RequestError("expected a binary frame holding a msgpack dict, got a text frame")
            if len(frame) > self.max_message_bytes:
                raise RequestError(f"message: {len(frame)} bytes, expected at most {self.max_message_bytes} bytes")
            try:
                message = unpackb(frame)
            except WireError as error:
                raise RequestError(f"message: {error}") from None
            observation, prompt, reset = parse_request(message, self.spec)
            if reset:
                self.policy.reset()
            if observation is None:
                return packb({RESET_KEY: True})
            start = time.perf_counter()
            action = np.asarray(self.policy.act(observation, prompt), dtype=np.float32)
            infer_ms = (time.perf_counter() - start) * 1e3
            return packb({ACTIONS_KEY: action.reshape(1, -1), TIMING_KEY: {"infer_ms": infer_ms}})
        except RequestError as error:
            return str(error)
        except (KeyError, ValueError, TypeError) as error:  # the policy refused the observation
            return f"policy: {error}"
        except Exception as error:  # a bug: this connection gets its message, everyone else is served on
            log.exception("request failed")
            return f"internal error: {type(error).__name__}: {error}"


# ------------------------------------------------------------------------------ server
def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_binding(host: str, api_key: str | None) -> None:
    """Refuse to serve on a non-loopback ``host`` without an API key."""
    if not api_key and not is_loopback(host):
        raise UsageError(
            f"--host {host}: serving on an address other than loopback needs an API key "
            f"(--api-key KEY or {API_KEY_ENV}); clients then send 'Authorization: Api-Key KEY'"
        )


class PolicyServer:
    """Serves a :class:`LoadedPolicy` to any number of websocket connections, one session each."""

    def __init__(
        self,
        loaded: LoadedPolicy,
        *,
        api_key: str | None = None,
        max_message_bytes: int | None = None,
        workers: int = 4,
    ) -> None:
        self.loaded = loaded
        self.api_key = api_key or None
        self.max_message_bytes = max_message_bytes or 2 * loaded.spec.request_bytes() + (1 << 20)
        self.workers = workers
        self._metadata = packb(loaded.metadata())
        self._pool: ThreadPoolExecutor | None = None

    def check_key(self, connection: ServerConnection, request: Request) -> Response | None:
        """The handshake's API-key check: 401 without a key, 403 with a wrong one."""
        if self.api_key is None:
            return None
        given = request.headers.get("Authorization", "")
        scheme, _, key = given.partition(" ")
        if not given or scheme != "Api-Key":
            return _refusal(connection, HTTPStatus.UNAUTHORIZED, "this server needs 'Authorization: Api-Key <key>'")
        if not hmac.compare_digest(key.strip().encode(), self.api_key.encode()):
            return _refusal(connection, HTTPStatus.FORBIDDEN, "wrong API key")
        return None

    async def handle(self, connection: ServerConnection) -> None:
        """One connection: metadata, then request after request until the client leaves."""
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        session = Session(self.loaded, self.max_message_bytes)
        try:
            await connection.send(self._metadata)
            async for frame in connection:
                await connection.send(await loop.run_in_executor(self._pool, session.answer, frame))
        except ConnectionClosed:
            pass  # the client left, perhaps mid-request; its reply has nowhere to go

    async def run(self, host: str, port: int, stop: asyncio.Future[None], ready: Callable[[int], None]) -> None:
        """Serve on ``host:port`` until ``stop`` is done; ``ready(port)`` once listening."""
        check_binding(host, self.api_key)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="sim2real-serve") as pool:
            self._pool = pool
            async with serve(
                self.handle,
                host,
                port,
                process_request=self.check_key,
                max_size=4 * self.max_message_bytes,
                compression=None,
            ) as server:
                ready(_bound_port(server))
                await stop


def _refusal(connection: ServerConnection, status: HTTPStatus, text: str) -> Response:
    response = connection.respond(status, text + "\n")
    if status == HTTPStatus.UNAUTHORIZED:
        response.headers = Headers(response.headers)
        response.headers["WWW-Authenticate"] = "Api-Key"
    return response


def _bound_port(server: Server) -> int:
    return int(next(iter(server.sockets)).getsockname()[1])


@dataclass
class RunningServer:
    """A server running on its own thread (:func:`serve_in_thread`)."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"


@contextmanager
def serve_in_thread(server: PolicyServer, host: str = DEFAULT_HOST, port: int = 0) -> Iterator[RunningServer]:
    """Run ``server`` on a background thread (port 0: any free port) for the ``with`` block."""
    started = threading.Event()
    state: dict[str, Any] = {}

    def main() -> None:
        async def go() -> None:
            loop = asyncio.get_running_loop()
            state["loop"], state["stop"] = loop, loop.create_future()

            def ready(bound: int) -> None:
                state["port"] = bound
                started.set()

            await server.run(host, port, state["stop"], ready)

        try:
            asyncio.run(go())
        except BaseException as error:
            state["error"] = error
            started.set()

    thread = threading.Thread(target=main, name="sim2real-serve", daemon=True)
    thread.start()
    started.wait()
    if "error" in state:
        raise state["error"]
    try:
        yield RunningServer(host, state["port"])
    finally:
        state["loop"].call_soon_threadsafe(lambda: state["stop"].done() or state["stop"].set_result(None))
        thread.join()


# ------------------------------------------------------------------------------ command line
def _temporal_ensemble(text: str) -> float | None:
    return None if text.lower() in ("none", "null", "off") else float(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sim2real serve", description="Serve a policy checkpoint over the "
                                     "openpi websocket protocol.")  # fmt: skip
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder (e.g. runs/vla/checkpoints/last)")
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 8000; 0: any free port)")
    parser.add_argument("--api-key", default=None, help=f"key clients must send (default: ${API_KEY_ENV})")
    sel = CLOSED_LOOP_SELECTION
    parser.add_argument("--decoding", default=sel.decoding, help=f"argmax or expectation (default {sel.decoding})")
    parser.add_argument("--temporal-ensemble", type=_temporal_ensemble, default=sel.temporal_ensemble,
                        help=f"ACT temporal-ensemble weight m, or none (default {sel.temporal_ensemble})")  # fmt: skip
    parser.add_argument("--execute-steps", type=int, default=sel.execute_steps,
                        help="actions of each chunk played open loop (needs --temporal-ensemble none)")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--workers", type=int, default=4, help="policy calls in flight at once (default 4)")
    hz = f"control rate told to clients (default: the checkpoint's, else {DEFAULT_CONTROL_HZ})"
    parser.add_argument("--control-hz", type=float, default=None, help=hz)
    parser.add_argument("--max-message-bytes", type=int, default=None,
                        help="largest request answered (default: twice a well-formed request + 1 MiB)")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> None:
    """``sim2real serve``: serve until interrupted (Ctrl-C or SIGTERM)."""
    args = _parser().parse_args(argv)
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    check_binding(args.host, api_key)
    if args.workers < 1:
        raise UsageError(f"--workers {args.workers}: expected at least 1")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    loaded = open_policy(
        args.checkpoint,
        temporal_ensemble=args.temporal_ensemble,
        execute_steps=args.execute_steps,
        decoding=args.decoding,
        device=args.device,
        control_hz=args.control_hz,
    )
    server = PolicyServer(loaded, api_key=api_key, max_message_bytes=args.max_message_bytes, workers=args.workers)

    async def go() -> None:
        loop = asyncio.get_running_loop()
        stop: asyncio.Future[None] = loop.create_future()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))

        def ready(port: int) -> None:
            kind, digest = loaded.info["policy_type"], loaded.info["checkpoint_sha256"][:12]
            where = f"ws://{args.host}:{port}"
            print(f"serving {kind} checkpoint {args.checkpoint} (sha256 {digest}) on {where}", flush=True)

        await server.run(args.host, args.port, stop, ready)

    try:
        asyncio.run(go())
    except OSError as error:  # the port is taken, or the address is not this machine's
        raise UsageError(
            f"--host {args.host} --port {args.port}: cannot listen there ({error.strerror or error})"
        ) from None
