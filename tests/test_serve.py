"""``sim2real serve``: the openpi websocket protocol over a checkpoint, against the in-process policy.

Every reply is checked against ``load_policy(...).act`` run in process on the same observations with the
same action selection: equal arrays, not close ones. The openpi-client interop test installs
``openpi-client==0.1.2`` (which pins numpy<2) into a venv of its own under pytest's cache folder and
runs it as a subprocess; it is skipped when that install fails (no package index reachable).
"""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import threading
import time
import venv
from pathlib import Path

import numpy as np
import pytest
import torch
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from sim2real.errors import UsageError
from sim2real.policies import BCConfig, BCModel, load_policy
from sim2real.policies.checkpoint import save_checkpoint
from sim2real.policies.synthetic import make_episodes, tiny_config
from sim2real.policies.tokenizer import ActionTokenizer
from sim2real.policies.vla import VLAModel
from sim2real.remote.server import (
    DEFAULT_CONTROL_HZ,
    PolicyServer,
    check_binding,
    checkpoint_hash,
    open_policy,
    serve_in_thread,
)
from sim2real.remote.wire import packb, unpackb

STATS = {
    "action_p01": np.array([-0.05] * 6 + [0.0], np.float32),
    "action_p99": np.array([0.05] * 6 + [1.0], np.float32),
    "state_mean": np.zeros(14, np.float32),
    "state_std": np.ones(14, np.float32),
}
SELECTION = {"temporal_ensemble": 0.1, "execute_steps": 1, "decoding": "expectation"}
SIZE = 32
CAMERAS = ("front", "wrist")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread: on shared cores torch's spinning worker threads make each step 30x slower;
    the server's thread pool gives the parallelism."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = VLAModel(tiny_config())
    model.set_normalization(STATS)
    torch.nn.init.normal_(model.head[-1].weight, std=1.0)  # actions that differ from frame to frame
    return save_checkpoint(tmp_path_factory.mktemp("serve") / "ckpt", model.eval(), ActionTokenizer.from_stats(STATS),
                           STATS, step=7)  # fmt: skip


@pytest.fixture(scope="module")
def loaded(checkpoint):
    return open_policy(checkpoint, **SELECTION)


@pytest.fixture(scope="module")
def server(loaded):
    with serve_in_thread(PolicyServer(loaded, workers=4)) as running:
        yield running


def _episodes(seed: int, n: int) -> list[tuple[str, list[dict]]]:
    """``n`` episodes as (instruction, [observation, ...]) in the env's observation format."""
    out = []
    for episode in make_episodes(n, seed=seed, image_size=SIZE, max_steps=12):
        frames = [{"image": {c: episode.images[c][t] for c in CAMERAS}, "state": episode.state[t]}
                  for t in range(len(episode))]  # fmt: skip
        out.append((episode.instruction, frames))
    return out


def _request(observation: dict, prompt: str, reset: bool = False) -> dict:
    message = {f"observation/image/{c}": observation["image"][c] for c in CAMERAS}
    message.update({"observation/state": observation["state"], "prompt": prompt})
    if reset:
        message["reset"] = True
    return message


def _in_process(checkpoint: Path, episodes: list[tuple[str, list[dict]]], **selection) -> list[np.ndarray]:
    policy = load_policy(checkpoint, **(selection or SELECTION))
    actions = []
    for instruction, frames in episodes:
        policy.reset()
        actions += [policy.act(frame, instruction) for frame in frames]
    return actions


def _ask(ws: ClientConnection, message: dict | bytes | str) -> dict | str:
    ws.send(packb(message) if isinstance(message, dict) else message)
    reply = ws.recv(timeout=60)
    return reply if isinstance(reply, str) else unpackb(reply)


def _run(url: str, episodes: list[tuple[str, list[dict]]], **connect_options) -> list[np.ndarray]:
    """Play ``episodes`` over one connection (reset with each episode's first frame)."""
    actions = []
    with connect(url, compression=None, **connect_options) as ws:
        unpackb(ws.recv(timeout=60))
        for instruction, frames in episodes:
            for t, frame in enumerate(frames):
                reply = _ask(ws, _request(frame, instruction, reset=t == 0))
                assert isinstance(reply, dict), reply
                assert reply["actions"].shape == (1, 7) and reply["actions"].dtype == np.float32
                actions.append(reply["actions"][0])
    return actions


def _assert_equal(got: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(got) == len(expected)
    for step, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert np.array_equal(a, b), (step, a, b)


# ------------------------------------------------------------------------------ protocol
def test_metadata_comes_first_and_describes_the_checkpoint(server, checkpoint):
    with connect(server.url, compression=None) as ws:
        frame = ws.recv(timeout=60)
    assert isinstance(frame, bytes)
    meta = unpackb(frame)
    assert (
        meta["policy_type"] == "vla" and meta["action_dim"] == 7 and meta["chunk"] == 4 and meta["action_horizon"] == 1
    )
    assert meta["action_names"][-1] == "gripper" and "1 = open" in meta["action_convention"]
    assert meta["cameras"] == list(CAMERAS) and meta["image_size"] == SIZE and meta["state_dim"] == 14
    assert meta["control_hz"] == DEFAULT_CONTROL_HZ and meta["step"] == 7
    assert meta["action_selection"] == SELECTION
    assert meta["checkpoint_sha256"] == checkpoint_hash(checkpoint) and len(meta["checkpoint_sha256"]) == 64
    assert meta["request"]["images"] == {c: f"observation/image/{c}" for c in CAMERAS}
    assert meta["request"]["state"] == "observation/state" and meta["request"]["prompt"] == "prompt"


def test_control_rate_default_is_the_generation_default():
    from sim2real.generation import GenerationConfig

    assert GenerationConfig.control_hz == DEFAULT_CONTROL_HZ


def test_checkpoint_hash_follows_the_weights_only(checkpoint, tmp_path):
    import shutil

    copy = Path(shutil.copytree(checkpoint, tmp_path / "copy"))
    assert checkpoint_hash(copy) == checkpoint_hash(checkpoint)
    (copy / "trainer_state.json").write_text("{}")  # resume files do not change what the policy does
    assert checkpoint_hash(copy) == checkpoint_hash(checkpoint)
    with (copy / "model.safetensors").open("r+b") as handle:
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 1]))
    assert checkpoint_hash(copy) != checkpoint_hash(checkpoint)


def test_replies_equal_the_in_process_policy_across_resets(server, checkpoint):
    episodes = _episodes(seed=3, n=3)
    _assert_equal(_run(server.url, episodes), _in_process(checkpoint, episodes))


def test_reset_only_request_and_reset_on_connect(server, checkpoint):
    (instruction, frames), = _episodes(seed=4, n=1)  # fmt: skip
    expected = _in_process(checkpoint, [(instruction, frames[:3])])
    with connect(server.url, compression=None) as ws:
        ws.recv(timeout=60)
        first = [_ask(ws, _request(f, instruction))["actions"][0] for f in frames[:3]]  # fresh state on connect
        assert _ask(ws, {"reset": True}) == {"reset": True}
        again = [_ask(ws, _request(f, instruction))["actions"][0] for f in frames[:3]]
    _assert_equal(first, expected)
    _assert_equal(again, expected)


def test_each_connection_keeps_its_own_state(server, checkpoint):
    a, b = _episodes(seed=5, n=1), _episodes(seed=6, n=1)
    expected = {"a": _in_process(checkpoint, a), "b": _in_process(checkpoint, b)}
    got: dict[str, list] = {"a": [], "b": []}
    with connect(server.url, compression=None) as wa, connect(server.url, compression=None) as wb:
        wa.recv(timeout=60), wb.recv(timeout=60)
        for t in range(max(len(a[0][1]), len(b[0][1]))):  # interleaved steps
            for name, ws, ((instruction, frames),) in (("a", wa, a), ("b", wb, b)):
                if t < len(frames):
                    got[name].append(_ask(ws, _request(frames[t], instruction))["actions"][0])
    _assert_equal(got["a"], expected["a"])
    _assert_equal(got["b"], expected["b"])


def test_execute_steps_plays_chunks_on_the_server(checkpoint):
    selection = {"temporal_ensemble": None, "execute_steps": 3, "decoding": "argmax"}
    episodes = _episodes(seed=7, n=1)
    expected = _in_process(checkpoint, episodes, **selection)
    with serve_in_thread(PolicyServer(open_policy(checkpoint, **selection))) as running:
        _assert_equal(_run(running.url, episodes), expected)


def test_any_registered_policy_type_is_served(tmp_path):
    fields = {f.name for f in dataclasses.fields(BCConfig)}
    torch.manual_seed(1)
    model = BCModel(BCConfig(**{k: v for k, v in vars(tiny_config()).items() if k in fields}))
    model.set_normalization(STATS)
    path = save_checkpoint(tmp_path / "bc", model.eval(), ActionTokenizer.from_stats(STATS), STATS)
    episodes = _episodes(seed=13, n=2)
    with serve_in_thread(PolicyServer(open_policy(path))) as running:
        with connect(running.url) as ws:
            meta = unpackb(ws.recv(timeout=60))
        assert meta["policy_type"] == "bc" and meta["action_selection"]["decoding"] == "expectation"
        _assert_equal(_run(running.url, episodes), _in_process(path, episodes))


def test_a_selection_the_policy_cannot_use_is_named_before_loading(checkpoint):
    with pytest.raises(UsageError, match="--execute-steps=9: must be in \\[1, 4\\]"):
        open_policy(checkpoint, temporal_ensemble=None, execute_steps=9)
    with pytest.raises(UsageError, match=r"--decoding='mode': expected one of argmax, expectation"):
        open_policy(checkpoint, decoding="mode")
    with pytest.raises(UsageError, match=r"--temporal-ensemble=0\.1: .*needs --execute-steps=1"):
        open_policy(checkpoint, execute_steps=2)


def test_the_remote_client_with_the_sim2real_mapping_reproduces_act(server, checkpoint):
    from sim2real.remote.client import RemotePolicyClient
    from sim2real.remote.mapping import REMOTE_MAPPINGS

    mapping = REMOTE_MAPPINGS.get("sim2real")
    episodes = _episodes(seed=14, n=2)
    got = []
    with RemotePolicyClient(server.url) as client:
        metadata = client.connect()
        mapping.check_metadata(metadata, CAMERAS)
        for instruction, frames in episodes:
            for t, frame in enumerate(frames):
                request = mapping.encode(frame, instruction, metadata)
                if t == 0:
                    request[mapping.reset_key] = True
                got.append(mapping.decode(client.infer(request))[0])
    _assert_equal(got, _in_process(checkpoint, episodes))


# ------------------------------------------------------------------------------ bad requests
def _bad_requests(good: dict) -> list[tuple[str, object, tuple[str, ...]]]:
    """(case, frame, words the error frame must hold)."""
    cases: list[tuple[str, object, tuple[str, ...]]] = []
    missing = {k: v for k, v in good.items() if k != "observation/image/wrist"}
    cases.append(("missing camera", missing, ("observation/image/wrist", "missing", "uint8 (32, 32, 3)")))
    shape = {**good, "observation/image/front": np.zeros((64, 64, 3), np.uint8)}
    cases.append(("image shape", shape, ("observation/image/front", "uint8 (32, 32, 3)", "(64, 64, 3)")))
    dtype = {**good, "observation/image/front": good["observation/image/front"].astype(np.float32)}
    cases.append(("image dtype", dtype, ("observation/image/front", "uint8 (32, 32, 3)", "float32")))
    listed = {**good, "observation/image/front": good["observation/image/front"].tolist()}
    cases.append(("image not an array", listed, ("observation/image/front", "uint8 (32, 32, 3)", "list")))
    state = {**good, "observation/state": np.zeros(7, np.float32)}
    cases.append(("state shape", state, ("observation/state", "float32 (14,)", "(7,)")))
    no_state = {k: v for k, v in good.items() if k != "observation/state"}
    cases.append(("missing state", no_state, ("observation/state", "missing", "float32 (14,)")))
    no_prompt = {k: v for k, v in good.items() if k != "prompt"}
    cases.append(("missing prompt", no_prompt, ("prompt", "str", "missing")))
    cases.append(("prompt type", {**good, "prompt": 3}, ("prompt", "str", "int")))
    cases.append(("reset type", {**good, "reset": "yes"}, ("reset", "true or false", "str")))
    cases.append(("not msgpack", b"\xc1\xc1", ("message", "msgpack")))
    cases.append(("not a dict", b"\x93\x01\x02\x03", ("message", "msgpack map")))
    cases.append(("text frame", "hello", ("binary frame", "msgpack dict")))
    big = {**good, "padding": np.zeros(3 << 20, np.uint8)}
    cases.append(("oversized", big, ("message", "bytes, expected at most")))
    return cases


def test_bad_requests_get_an_error_frame_and_change_nothing(server, checkpoint):
    (instruction, frames), = _episodes(seed=8, n=1)  # fmt: skip
    expected = _in_process(checkpoint, [(instruction, frames[:4])])
    got = []
    with connect(server.url, compression=None, max_size=None) as ws, connect(server.url, compression=None) as other:
        ws.recv(timeout=60), other.recv(timeout=60)
        good = _request(frames[0], instruction)
        for frame in frames[:4]:
            for case, bad, words in _bad_requests(_request(frame, instruction)):
                reply = _ask(ws, bad)
                assert isinstance(reply, str), case
                assert all(w in reply for w in words), (case, reply)
                assert isinstance(_ask(other, good), dict), case  # everyone else is served meanwhile
            got.append(_ask(ws, _request(frame, instruction))["actions"][0])  # the state never saw the bad ones
    _assert_equal(got, expected)


def test_a_message_far_over_the_limit_closes_that_connection_only(loaded):
    (instruction, frames), = _episodes(seed=9, n=1)  # fmt: skip
    server = PolicyServer(loaded, max_message_bytes=50_000)
    with serve_in_thread(server) as running, connect(running.url, compression=None) as other:
        other.recv(timeout=60)
        with connect(running.url, compression=None, max_size=None) as ws:
            ws.recv(timeout=60)
            ws.send(packb({**_request(frames[0], instruction), "padding": np.zeros(300_000, np.uint8)}))
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=60)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        assert isinstance(_ask(other, _request(frames[0], instruction)), dict)


# ------------------------------------------------------------------------------ API key and binding
def test_api_key_is_checked_at_the_handshake(loaded):
    (instruction, frames), = _episodes(seed=10, n=1)  # fmt: skip
    with serve_in_thread(PolicyServer(loaded, api_key="s3cret")) as running:
        for headers, status in ((None, 401), ({"Authorization": "Api-Key wrong"}, 403),
                                ({"Authorization": "Bearer s3cret"}, 401)):  # fmt: skip
            with pytest.raises(InvalidStatus) as refused:
                connect(running.url, additional_headers=headers, open_timeout=30)
            assert refused.value.response.status_code == status
        with connect(running.url, additional_headers={"Authorization": "Api-Key s3cret"}) as ws:
            assert unpackb(ws.recv(timeout=60))["policy_type"] == "vla"
            assert isinstance(_ask(ws, _request(frames[0], instruction)), dict)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_key(host):
    check_binding(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.org"])
def test_any_other_address_needs_a_key(host):
    with pytest.raises(UsageError, match=f"--host {host}: .*needs an API key"):
        check_binding(host, None)
    check_binding(host, "key")


def _cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sim2real.cli", "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip


def test_cli_refuses_a_public_address_without_a_key(checkpoint):
    import os

    env = {k: v for k, v in os.environ.items() if k != "SIM2REAL_API_KEY"}
    process = _cli("--checkpoint", str(checkpoint), "--host", "0.0.0.0", env=env)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 2 and out == ""
    assert err.strip().count("\n") == 0 and "--host 0.0.0.0" in err and "API key" in err and "Traceback" not in err


def test_cli_refuses_a_missing_checkpoint_in_one_line(tmp_path):
    process = _cli("--checkpoint", str(tmp_path / "nothing"))
    _, err = process.communicate(timeout=120)
    assert process.returncode == 1 and err.strip().count("\n") == 0 and "nothing" in err, err


def test_cli_serves_until_terminated(checkpoint):
    selection = ("--temporal-ensemble", "none", "--decoding", "argmax")
    process = _cli("--checkpoint", str(checkpoint), "--port", "0", "--threads", "1", *selection)
    try:
        line = process.stdout.readline()
        assert line.startswith("serving vla checkpoint"), (line, process.stderr.read() if process.poll() else "")
        url = line.split(" on ")[-1].strip()
        episodes = _episodes(seed=11, n=1)
        raw = {"temporal_ensemble": None, "decoding": "argmax"}
        _assert_equal(_run(url, episodes), _in_process(checkpoint, episodes, **raw))
    finally:
        process.terminate()
        process.communicate(timeout=60)
    assert process.returncode == 0


# ------------------------------------------------------------------------------ load
def test_eight_clients_two_hundred_requests_each(server, checkpoint):
    """No dropped, mixed-up or stale replies: each client's actions equal its own in-process run,
    and clients that leave mid-request do not stop the server."""
    clients, requests = 8, 200
    plans = {}
    for client in range(clients):
        episodes, count = [], 0
        for instruction, frames in _episodes(seed=100 + client, n=40):
            episodes.append((instruction, frames[: requests - count]))
            count += len(episodes[-1][1])
            if count == requests:
                break
        assert count == requests
        plans[client] = episodes
    expected = {client: _in_process(checkpoint, plans[client]) for client in plans}
    got: dict[int, list] = {}
    errors: list[BaseException] = []

    def client_main(client: int) -> None:
        try:
            got[client] = _run(server.url, plans[client])
        except BaseException as error:
            errors.append(error)

    def leaver_main() -> None:  # sends a request and leaves without its reply: a close frame, or the socket cut
        (instruction, frames), = _episodes(seed=99, n=1)  # fmt: skip
        for attempt in range(10):
            with connect(server.url, compression=None) as ws:
                ws.recv(timeout=60)
                ws.send(packb(_request(frames[0], instruction)))
                if attempt % 2:
                    ws.socket.shutdown(socket.SHUT_RDWR)

    threads = [threading.Thread(target=client_main, args=(c,)) for c in range(clients)]
    threads.append(threading.Thread(target=leaver_main))
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not errors, errors
    for client in range(clients):
        _assert_equal(got[client], expected[client])
    assert time.perf_counter() - start < 600
    _assert_equal(_run(server.url, plans[0][:1]), expected[0][: len(plans[0][0][1])])  # still serving


# ------------------------------------------------------------------------------ openpi-client
OPENPI_CLIENT = "openpi-client==0.1.2"
#: openpi-client 0.1.2 imports typing_extensions without declaring it
CLIENT_EXTRAS = ("typing_extensions",)

CLIENT_SCRIPT = """
import json, sys
import numpy as np
from openpi_client.websocket_client_policy import WebsocketClientPolicy

port, api_key, inputs, outputs = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
data = np.load(inputs)
policy = WebsocketClientPolicy(host="127.0.0.1", port=port, api_key=api_key)
meta = policy.get_server_metadata()
actions = []
for t in range(len(data["state"])):
    obs = {"observation/image/front": data["front"][t], "observation/image/wrist": data["wrist"][t],
           "observation/state": data["state"][t], "prompt": str(data["prompt"]), "reset": bool(t == 0)}
    actions.append(policy.infer(obs)["actions"])
np.save(outputs, np.stack(actions))
print(json.dumps({"policy": meta["policy_type"], "chunk": meta["chunk"], "cameras": meta["cameras"],
                  "numpy": np.__version__}))
"""


@pytest.fixture(scope="session")
def openpi_client_python(request) -> Path:
    """The python of a venv holding openpi-client (made once, kept in pytest's cache folder)."""
    root = Path(request.config.cache.mkdir("openpi_client_venv")) / OPENPI_CLIENT.replace("==", "-")
    python = root / "bin" / "python"
    done = root / ".installed"
    if not done.is_file():
        try:
            venv.EnvBuilder(clear=True, with_pip=True).create(root)
        except (OSError, subprocess.CalledProcessError) as error:  # no ensurepip (e.g. Debian without python3-venv)
            pytest.skip(f"cannot make a venv for {OPENPI_CLIENT}: {error}")
        install = [str(python), "-m", "pip", "install", "-q", OPENPI_CLIENT, *CLIENT_EXTRAS]
        result = subprocess.run(install, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            pytest.skip(f"cannot install {OPENPI_CLIENT}: {result.stderr.strip().splitlines()[-1:]}")
        done.write_text(OPENPI_CLIENT)
    return python


@pytest.mark.interop
def test_openpi_client_talks_to_sim2real_serve(openpi_client_python, loaded, checkpoint, tmp_path):
    (instruction, frames), = _episodes(seed=12, n=1)  # fmt: skip
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, front=np.stack([f["image"]["front"] for f in frames]),
             wrist=np.stack([f["image"]["wrist"] for f in frames]),
             state=np.stack([f["state"] for f in frames]), prompt=np.array(instruction))  # fmt: skip
    outputs = tmp_path / "actions.npy"
    with serve_in_thread(PolicyServer(loaded, api_key="k3y")) as running:
        result = subprocess.run([str(openpi_client_python), "-c", CLIENT_SCRIPT, str(running.port), "k3y",
                                 str(inputs), str(outputs)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    meta = json.loads(result.stdout.strip().splitlines()[-1])
    assert meta["policy"] == "vla" and meta["chunk"] == 4 and meta["cameras"] == list(CAMERAS)
    assert meta["numpy"].startswith("1.")  # the client really ran on its own numpy<2
    actions = np.load(outputs)
    assert actions.shape == (len(frames), 1, 7) and actions.dtype == np.float32
    _assert_equal(list(actions[:, 0]), _in_process(checkpoint, [(instruction, frames)]))
