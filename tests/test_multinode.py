"""Multi-node generation through real hydra launchers: two jobs on shard ranges into one folder,
then ``sim2real index``, give the bytes of one uninterrupted run (README, "Multi-node")."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = ["task=pick_place", "randomization=none", "num_episodes=8", "shard_size=2",
           "formats=[zarr,rlds,hdf5]", "progress=false"]  # fmt: skip
JOBS = "shard_range=[0,2],[2,4]"  # a sweep over two lists: two jobs
DATA = ("zarr", "hdf5", "rlds")  # what a run writes besides its manifests, shard records and logs
# one authentication mode for the cluster and its drivers, whatever token ~/.ray holds
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def _run(command: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def _generate(output: Path, *args: str, env: dict[str, str] | None = None) -> None:
    _run([sys.executable, str(ROOT / "generate.py"), *args, *OPTIONS, f"output_dir={output}"], env)


def _data_files(root: Path) -> dict[str, str]:
    files = [p for name in DATA for p in sorted((root / name).rglob("*")) if p.is_file()]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def one_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("single") / "data"
    _generate(out)
    files = _data_files(out)
    assert any(p.endswith(".hdf5") for p in files) and any(".tfrecord-" in p for p in files)
    assert any(p.endswith("/c.0.0.0.0") for p in files)  # image chunks of the Zarr stores
    return files


def _two_jobs_then_index(out: Path, *launcher: str, env: dict[str, str] | None = None) -> dict[str, str]:
    _generate(out, "-m", *launcher, JOBS, env=env)
    overrides = sorted(out.glob("logs/multirun-*/*/.hydra/overrides.yaml"))
    ranges = sorted(line for p in overrides for line in p.read_text().splitlines() if "shard_range" in line)
    assert ranges == ["- shard_range=[0,2]", "- shard_range=[2,4]"]
    assert not (out / "manifest.json").exists()  # a job of a multi-node run leaves the merge to the index
    _run([str(Path(sys.executable).with_name("sim2real")), "index", str(out)])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["num_episodes"] == 8
    return _data_files(out)


def test_joblib_jobs_and_index_equal_one_run(one_run: dict[str, str], tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="pip install -e '.[multinode]'")
    assert _two_jobs_then_index(tmp_path / "data", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2") == one_run


def test_submitit_local_jobs_and_index_equal_one_run(one_run: dict[str, str], tmp_path: Path) -> None:
    """submitit's local executor: the SLURM launcher's pickling, job folders and result files, without sbatch."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[multinode]'")
    out = tmp_path / "data"
    # one submitit folder for both jobs (the launcher's default is .submitit/%j): the %j folder is made only after
    # the job's controller has started, and a controller that starts first cannot open its log (submitit's race)
    launcher = ("hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
                "hydra.launcher.submitit_folder=${hydra.sweep.dir}/.submitit")  # fmt: skip
    assert _two_jobs_then_index(out, *launcher) == one_run
    assert len(list(out.glob("logs/multirun-*/.submitit/*_result.pkl"))) == 2


@contextlib.contextmanager
def _ray_temp() -> Iterator[Path]:
    temp = Path(tempfile.mkdtemp(prefix="ray-"))  # short: Ray's socket paths must fit in 107 characters
    try:
        yield temp
    finally:
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_ray_jobs_and_index_equal_one_run(one_run: dict[str, str], tmp_path: Path) -> None:
    """hydra/launcher=ray on its own: the launcher starts Ray in the calling process."""
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="pip install -e '.[multinode]'")
    with _ray_temp() as temp:  # a temp dir without a running cluster's address: Ray starts a new one
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | RAY_ENV | {"RAY_TMPDIR": str(temp)}
        assert _two_jobs_then_index(tmp_path / "data", "hydra/launcher=ray", env=env) == one_run


def _free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:  # all bound at once: distinct ports
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A one-node Ray cluster as `ray start --head` makes it; yields its address."""
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="pip install -e '.[multinode]'")
    with _ray_temp() as temp:
        yield from _ray_head(temp)


def _ray_head(temp: Path) -> Iterator[str]:
    # every port chosen here, all distinct: Ray's fixed defaults (dashboard agent 52365, ...) lie in the
    # ephemeral range, where a port picked for another component, or any open connection, may hold them
    gcs, client, dashboard, agent_http, agent_grpc, metrics, runtime_env, node_manager, object_manager = _free_ports(9)
    log = (temp / "start.log").open("w")
    command = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--disable-usage-stats",
               "--node-ip-address=127.0.0.1", f"--port={gcs}", "--num-cpus=2",
               f"--ray-client-server-port={client}", f"--dashboard-port={dashboard}",
               f"--dashboard-agent-listen-port={agent_http}", f"--dashboard-agent-grpc-port={agent_grpc}",
               f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={runtime_env}",
               f"--node-manager-port={node_manager}", f"--object-manager-port={object_manager}",
               "--include-dashboard=false", "--object-store-memory=100000000", f"--temp-dir={temp}"]  # fmt: skip
    env = os.environ | RAY_ENV
    head = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in (temp / "start.log").read_text():
            assert head.poll() is None and time.monotonic() < deadline, (temp / "start.log").read_text()[-3000:]
            time.sleep(0.2)
        yield f"127.0.0.1:{gcs}"
    finally:
        head.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            head.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)  # anything of its session left behind
        log.close()


@pytest.mark.slow
def test_ray_cluster_jobs_and_index_equal_one_run(one_run: dict[str, str], ray_cluster: str, tmp_path: Path) -> None:
    env = os.environ | RAY_ENV | {"RAY_ADDRESS": ray_cluster}
    assert _two_jobs_then_index(tmp_path / "data", "hydra/launcher=ray_cluster", env=env) == one_run
