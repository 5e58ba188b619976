"""policy=remote: the openpi websocket client, its mappings, and a fake server written here.

Bad settings are named before any rollout (no server, metadata that does not fit, a wrong API
key); a server that fails mid-run ends that episode as a counted error, never a hung evaluation.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from websockets.sync.server import Server, ServerConnection, serve

from sim2real.contracts.geometry import matrix_to_rpy, rpy_to_matrix
from sim2real.evaluation.closed_loop import evaluate_closed_loop
from sim2real.evaluation.harness import EvaluationConfig, PolicyConfig, run_evaluation
from sim2real.evaluation.policies import PolicySetupError
from sim2real.registry import UnknownNameError
from sim2real.remote.client import RemotePolicyClient, ReplyTimeoutError, ServerError, server_uri
from sim2real.remote.mapping import REMOTE_MAPPINGS, MappingError
from sim2real.remote.wire import packb, unpackb

ROOT = Path(__file__).resolve().parents[1]
LIBERO_KEYS = {"observation/image", "observation/wrist_image", "observation/state", "prompt"}

#: what the fake server does with request ``n`` (0-based, counted over all connections):
#: a dict to send, a str (a text frame: the server's error), "hang" or "drop"
Behaviour = Callable[[int, dict[str, Any]], dict[str, Any] | str]


def chunk(length: int = 10, gripper: float = -1.0) -> dict[str, Any]:
    """A LIBERO-style reply: ``length`` still actions, gripper -1 (open)."""
    actions = np.zeros((length, 7), np.float32)
    actions[:, 6] = gripper
    return {"actions": actions, "server_timing": {"infer_ms": 1.0}}


class FakeServer:
    """A websocket policy server in a thread: metadata on connect, then ``behaviour`` per request."""

    def __init__(self, behaviour: Behaviour, metadata: dict[str, Any] | None = None,
                 api_key: str | None = None) -> None:  # fmt: skip
        self.behaviour, self.metadata, self.api_key = behaviour, metadata or {}, api_key
        self.requests: list[dict[str, Any]] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._server: Server = serve(self._handle, "127.0.0.1", 0, process_request=self._check_key)
        self.port = self._server.socket.getsockname()[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _check_key(self, connection: ServerConnection, request: Any) -> Any:
        if self.api_key is None:
            return None
        given = request.headers.get("Authorization")
        if given is None:
            return connection.respond(HTTPStatus.UNAUTHORIZED, "needs Authorization: Api-Key <key>\n")
        if given != f"Api-Key {self.api_key}":
            return connection.respond(HTTPStatus.FORBIDDEN, "wrong API key\n")
        return None

    def _handle(self, connection: ServerConnection) -> None:
        with self._lock:
            self.connections += 1
        connection.send(packb(self.metadata))
        for frame in connection:
            request = unpackb(frame)  # type: ignore[arg-type]
            with self._lock:
                index = len(self.requests)
                self.requests.append(request)
            answer = self.behaviour(index, request)
            if answer == "hang":
                time.sleep(3.0)
                return
            if answer == "drop":
                connection.close()
                return
            connection.send(answer if isinstance(answer, str) else packb(answer))

    def close(self) -> None:
        self._server.shutdown()


@pytest.fixture
def make_server() -> Iterator[Callable[..., FakeServer]]:
    servers: list[FakeServer] = []

    def make(behaviour: Behaviour = lambda n, r: chunk(), **kwargs: Any) -> FakeServer:
        servers.append(FakeServer(behaviour, **kwargs))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _observation(size: int = 128) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    state = np.zeros(14, np.float32)
    state[:7] = [0.5, -0.1, 0.2, np.pi, 0.1, 0.3, 0.75]
    images = {c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in ("front", "wrist")}
    return {"image": images, "state": state}


# ------------------------------------------------------------------------------ mappings


def test_libero_request_has_openpis_keys_shapes_and_state_layout() -> None:
    mapping = REMOTE_MAPPINGS.get("libero")
    observation = _observation()
    request = mapping.encode(observation, "put the cube in the bowl")
    assert set(request) == LIBERO_KEYS and request["prompt"] == "put the cube in the bowl"
    for key in ("observation/image", "observation/wrist_image"):
        assert request[key].dtype == np.uint8 and request[key].shape == (224, 224, 3)
    state = request["observation/state"]
    assert state.dtype == np.float32 and state.shape == (8,)
    np.testing.assert_allclose(state[:3], observation["state"][:3])
    rotation = Rotation.from_rotvec(state[3:6]).as_matrix()
    np.testing.assert_allclose(rotation, rpy_to_matrix(observation["state"][3:6]), atol=1e-5)
    np.testing.assert_allclose(state[6:], [0.03, -0.03], atol=1e-6)  # 0.75 open x 0.04 m per finger


def test_libero_actions_become_ours() -> None:
    mapping = REMOTE_MAPPINGS.get("libero")
    rotvec = np.array([0.1, -0.2, 0.3])
    reply = {"actions": np.array([[1.0, -0.5, 0.2, *rotvec, -1.0], [0, 0, 0, 0, 0, 0, 1.0], [0] * 7])}
    ours = mapping.decode(reply)
    assert ours.dtype == np.float32 and ours.shape == (3, 7)
    np.testing.assert_allclose(ours[0, :3], [0.05, -0.025, 0.01], atol=1e-7)  # 0.05 m per unit
    expected = matrix_to_rpy(Rotation.from_rotvec(0.5 * rotvec).as_matrix())  # 0.5 rad per unit
    np.testing.assert_allclose(ours[0, 3:6], expected, atol=1e-6)
    assert ours[:, 6].tolist() == [1.0, 0.0, 0.5]  # -1 open -> 1, +1 close -> 0
    with pytest.raises(MappingError, match=r"shape \(2, 8\); expected \(chunk, 7\)"):
        mapping.decode({"actions": np.zeros((2, 8))})
    with pytest.raises(MappingError, match="reply has no 'actions'"):
        mapping.decode({"action": np.zeros((2, 7))})


def test_sim2real_mapping_is_our_convention() -> None:
    mapping = REMOTE_MAPPINGS.get("sim2real")
    observation = _observation()
    request = mapping.encode(observation, "push")
    assert set(request) == {"observation/image/front", "observation/image/wrist", "observation/state", "prompt"}
    assert request["observation/image/front"] is observation["image"]["front"]
    actions = np.array([[0.01, 0, -0.02, 0.1, 0, 0, 0.0]], np.float32)
    np.testing.assert_array_equal(mapping.decode({"actions": actions}), actions)
    mapping.check_metadata({"action_dim": 7, "cameras": ["front"], "image_size": [128, 128], "state_dim": 14},
                           ("front", "wrist"))  # fmt: skip
    assert mapping.encode(observation, "push", {"image_size": [96, 96]})["observation/image/wrist"].shape == (96, 96, 3)
    with pytest.raises(MappingError, match=r"takes 96x64 images \(metadata image_size\); the mappings send square"):
        mapping.check_metadata({"image_size": [96, 64]}, ("front", "wrist"))
    with pytest.raises(MappingError, match=r"takes 256x256 images .*mapping libero sends 224x224"):
        REMOTE_MAPPINGS.get("libero").check_metadata({"image_size": 256}, ("front", "wrist"))
    with pytest.raises(UnknownNameError, match="unknown remote mapping 'droid'; known remote mappings: libero, sim2r"):
        REMOTE_MAPPINGS.get("droid")


# ------------------------------------------------------------------------------ the client


def test_client_round_trip_sends_the_api_key_and_reads_metadata(make_server: Callable[..., FakeServer]) -> None:
    server = make_server(lambda n, r: {"actions": r["x"][None] * 2}, metadata={"action_dim": 7}, api_key="k3y")
    with RemotePolicyClient(server_uri("127.0.0.1", server.port), api_key="k3y") as client:
        assert client.connect() == {"action_dim": 7}
        reply = client.infer({"x": np.arange(7, dtype=np.float32), "prompt": "hi"})
    np.testing.assert_array_equal(reply["actions"], 2 * np.arange(7, dtype=np.float32)[None])
    assert server.requests[0]["prompt"] == "hi"


def test_client_times_out_and_names_server_errors(make_server: Callable[..., FakeServer]) -> None:
    server = make_server(lambda n, r: "hang" if n == 0 else "Traceback ...\nValueError: bad state shape")
    client = RemotePolicyClient(server_uri("127.0.0.1", server.port), reply_timeout=0.3)
    client.connect()
    start = time.perf_counter()
    with pytest.raises(ReplyTimeoutError, match=r"sent no reply within 0\.3 s"):
        client.infer({"prompt": "a"})
    assert time.perf_counter() - start < 2.0 and not client.connected
    client.connect()
    with pytest.raises(ServerError, match="answered with an error: ValueError: bad state shape"):
        client.infer({"prompt": "b"})
    assert not client.connected


# ------------------------------------------------------------------------------ evaluation


def _options(server: FakeServer, **extra: Any) -> dict[str, Any]:
    return {"port": server.port, "mapping": "libero", "connect_timeout": 2.0, "reply_timeout": 2.0, **extra}


def test_libero_chunks_are_played_five_actions_per_request(make_server: Callable[..., FakeServer]) -> None:
    server = make_server()
    [result] = evaluate_closed_loop("remote", _options(server), ["in_distribution"], ["push"], 1, progress=False)
    assert result.error is None and not result.success and result.length == 100  # push: 100 steps
    assert len(server.requests) == 20 and server.connections == 1
    assert all(set(r) == LIBERO_KEYS for r in server.requests)
    assert server.requests[0]["observation/image"].shape == (224, 224, 3)


def test_sim2real_mapping_resets_each_episode_and_plays_one_action(make_server: Callable[..., FakeServer]) -> None:
    metadata = {"action_dim": 7, "cameras": ["front", "wrist"], "image_size": [128, 128]}
    server = make_server(
        lambda n, r: {"actions": np.array([[0, 0, 0, 0, 0, 0, 1.0]] * 3, np.float32)}, metadata=metadata
    )
    options = {"port": server.port, "mapping": "sim2real"}
    results = evaluate_closed_loop("remote", options, ["in_distribution"], ["push"], 2, progress=False)
    assert [r.error for r in results] == [None, None]
    assert len(server.requests) == sum(r.length for r in results)  # one request per step
    assert [n for n, r in enumerate(server.requests) if r.get("reset")] == [0, results[0].length]


def test_a_failing_server_ends_that_episode_as_a_counted_error(make_server: Callable[..., FakeServer],
                                                                tmp_path: Path) -> None:  # fmt: skip
    # request 0 is the check before the rollouts; 3 fails episode 0 (requests 1-3), 10 drops episode 1
    # (4-10), 15 hangs episode 2 (11-15); episode 3 (16-35) runs to its end
    def behaviour(n: int, request: dict[str, Any]) -> dict[str, Any] | str:
        return {3: "Traceback (most recent call last):\nRuntimeError: CUDA out of memory", 10: "drop",
                15: "hang"}.get(n, chunk())  # fmt: skip

    server = make_server(behaviour)
    config = EvaluationConfig(policy=PolicyConfig(name="remote", **_options(server, reply_timeout=0.5)), tasks=["push"],
                              episodes_per_variant=4, reference_rows=False, videos=0, output_dir=str(tmp_path),
                              progress=False)  # fmt: skip
    start = time.perf_counter()
    run_evaluation(config)
    assert time.perf_counter() - start < 60
    entry = json.loads((tmp_path / "metrics.json").read_text())["closed_loop"]["in_distribution"]["push"]
    assert (entry["trials"], entry["successes"], entry["errors"]) == (4, 0, 3)
    reasons = list(entry["error_reasons"])
    assert "answered with an error: RuntimeError: CUDA out of memory" in reasons[0]
    assert "closed the connection" in reasons[1] and "sent no reply within 0.5 s" in reasons[2]
    assert server.connections == 5  # the check, then episodes 1, 2 and 3 connect again
    report = (tmp_path / "report.md").read_text()
    assert "Episodes ended by a policy error" in report and "CUDA out of memory" in report


# ------------------------------------------------------------------------------ bad settings


def _refused(tmp_path: Path, options: dict[str, Any]) -> str:
    config = EvaluationConfig(policy=PolicyConfig(name="remote", **options), tasks=["push"], episodes_per_variant=1,
                              output_dir=str(tmp_path / "never"), progress=False)  # fmt: skip
    with pytest.raises(PolicySetupError) as caught:
        run_evaluation(config)
    assert not (tmp_path / "never").exists()
    return str(caught.value)


def test_no_server_at_the_address_is_named_within_the_connect_timeout(tmp_path: Path) -> None:
    port = _free_port()
    assert f"no policy server at ws://127.0.0.1:{port}" in _refused(tmp_path, {"port": port})
    with socket.socket() as silent:  # accepts TCP connections, never answers the handshake
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        start = time.perf_counter()
        message = _refused(tmp_path, {"port": silent.getsockname()[1], "connect_timeout": 0.5})
        assert time.perf_counter() - start < 10
    assert "answered at" in message and "within 0.5 s" in message


@pytest.mark.parametrize(
    ("metadata", "named"),
    [
        ({"action_dim": 6}, "the server's actions are 6-D (metadata action_dim)"),
        ({"cameras": ["front", "side"]}, "the env renders ['front', 'wrist'], not ['side']"),
        ({"state_dim": 10}, "the server takes a 10-D state"),
    ],
)
def test_metadata_that_does_not_fit_the_env_is_named(make_server: Callable[..., FakeServer], tmp_path: Path,
                                                     metadata: dict[str, Any], named: str) -> None:  # fmt: skip
    server = make_server(metadata=metadata)
    assert named in _refused(tmp_path, _options(server))
    assert server.requests == []


def test_a_reply_that_does_not_fit_the_mapping_is_named(make_server: Callable[..., FakeServer],
                                                        tmp_path: Path) -> None:  # fmt: skip
    server = make_server(lambda n, r: {"actions": np.zeros((10, 8), np.float32)})
    assert "shape (10, 8); expected (chunk, 7) for mapping libero" in _refused(tmp_path, _options(server))


def test_a_wrong_or_missing_api_key_is_named(make_server: Callable[..., FakeServer], tmp_path: Path) -> None:
    server = make_server(api_key="right")
    assert "refused the API key (HTTP 403)" in _refused(tmp_path, _options(server, api_key="wrong"))
    assert "refused the API key (HTTP 401); it needs policy.api_key" in _refused(tmp_path, _options(server))
    assert server.requests == []


def test_bad_remote_settings_are_named(tmp_path: Path) -> None:
    config = EvaluationConfig(policy=PolicyConfig(name="remote", mapping="droid"), tasks=["push"],
                              output_dir=str(tmp_path / "never"), progress=False)  # fmt: skip
    with pytest.raises(UnknownNameError, match="known remote mappings: libero, sim2real"):
        run_evaluation(config)
    with pytest.raises(PolicySetupError, match=r"policy\.replan_steps=0: must be >= 1"):
        run_evaluation(replace(config, policy=PolicyConfig(name="remote", replan_steps=0)))


def test_the_command_line_names_a_missing_server_in_one_line(tmp_path: Path) -> None:
    port = _free_port()
    out = tmp_path / "eval"
    result = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), "policy=remote", f"policy.port={port}",
                             "policy.mapping=libero", "tasks=[push]", "episodes_per_variant=1", f"output_dir={out}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stdout + result.stderr
    assert f"no policy server at ws://127.0.0.1:{port}" in lines[0]
    assert not out.exists()


def test_sim2real_serve_gives_the_in_process_policys_episodes(tmp_path: Path) -> None:
    """Our own server under the sim2real mapping: the same episodes as the checkpoint in process."""
    server_module = pytest.importorskip("sim2real.remote.server")
    torch = pytest.importorskip("torch")
    from sim2real.policies.checkpoint import save_checkpoint
    from sim2real.policies.synthetic import tiny_config
    from sim2real.policies.tokenizer import ActionTokenizer
    from sim2real.policies.vla import VLAModel

    stats = {"action_p01": np.array([-0.05] * 6 + [0.0], np.float32),
             "action_p99": np.array([0.05] * 6 + [1.0], np.float32),
             "state_mean": np.zeros(14, np.float32), "state_std": np.ones(14, np.float32)}  # fmt: skip
    torch.manual_seed(0)
    model = VLAModel(tiny_config(image_size=128))  # the rendered size: no resize on either side
    model.set_normalization(stats)
    torch.nn.init.normal_(model.head[-1].weight, std=1.0)  # actions that differ from step to step
    checkpoint = save_checkpoint(tmp_path / "ckpt", model.eval(), ActionTokenizer.from_stats(stats), stats, step=1)
    local = evaluate_closed_loop("vla", {"checkpoint": str(checkpoint)}, ["in_distribution"], ["push"], 2,
                                 progress=False)  # fmt: skip
    loaded = server_module.open_policy(checkpoint)
    with server_module.serve_in_thread(server_module.PolicyServer(loaded, workers=1)) as running:
        remote = evaluate_closed_loop("remote", {"port": running.port}, ["in_distribution"], ["push"], 2,
                                      progress=False)  # fmt: skip
    assert [r.error for r in remote] == [None, None]
    assert [(r.length, r.stage, r.safety) for r in remote] == [(r.length, r.stage, r.safety) for r in local]
