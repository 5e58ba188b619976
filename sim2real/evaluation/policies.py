"""Policies that evaluation rolls out: a VLA checkpoint, the scripted expert, a random policy,
any importable Python object (``python``) and a websocket policy server (``remote``).

Each is built by name from ``ROLLOUT_POLICIES`` and exposes ``reset(env)`` at the start of an
episode and ``act(observation, instruction) -> float32 (7,)``; ``observation`` is
``{"image": {camera: uint8 (H, W, 3)}, "state": float32 (14,)}``. The expert reads privileged
state from the env's backend; the others see only observations. A class with ``preflight(env,
observation, instruction)`` is checked by :func:`check_rollout_policy` before any rollout, and
one with ``options`` names the ``policy.*`` settings it takes.
"""

from __future__ import annotations

import importlib
import inspect
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sim2real.contracts.actions import ACTION_DIM
from sim2real.errors import UsageError
from sim2real.evaluation.action_selection import CLOSED_LOOP_SELECTION as _SELECTION
from sim2real.registry import Registry, UnknownNameError


class RolloutPolicy(Protocol):
    name: str

    def reset(self, env: Any) -> None: ...

    def act(self, observation: dict[str, Any], instruction: str) -> np.ndarray: ...


ROLLOUT_POLICIES: Registry[type] = Registry("rollout policy")


@dataclass
class PolicyConfig:
    """``policy.*``: which policy is rolled out (``name``), and the settings of its kind."""

    name: str = "expert"  # expert | random | a trained policy type (vla, bc) | python | remote
    # trained policies (vla, bc): the checkpoint folder; ACT temporal ensemble weight m (None: off);
    # chunk actions played open loop per prediction; decoding (vla: expectation | argmax; bc: expectation)
    checkpoint: str | None = None
    temporal_ensemble: float | None = _SELECTION.temporal_ensemble
    execute_steps: int = _SELECTION.execute_steps
    decoding: str = _SELECTION.decoding
    # python: an importable object with reset() and act(observation, instruction)
    target: str | None = None  # package.module:ClassName
    kwargs: Any = None  # a dict, e.g. policy.kwargs={gain:2} (Any: a typed dict takes no new keys in struct mode)
    # remote: a server speaking the openpi websocket protocol
    host: str = "127.0.0.1"  # a host name or address, or a ws:// URI
    port: int | None = 8000
    api_key: str | None = None  # sent as 'Authorization: Api-Key <key>'
    mapping: str = "sim2real"  # request/reply convention: sim2real | libero (sim2real/remote/mapping.py)
    connect_timeout: float = 10.0  # s, connection and metadata
    reply_timeout: float = 30.0  # s, each reply
    first_reply_timeout: float = 120.0  # s, the check's one reply before the rollouts (a server may compile first)
    replan_steps: int | None = None  # actions played per returned chunk; None: the mapping's

    def rollout_options(self) -> dict[str, Any]:
        """The settings the rollout policy ``name`` takes (its class's ``options``)."""
        return {key: getattr(self, key) for key in rollout_option_keys(self.name)}


@ROLLOUT_POLICIES.register("expert")
class ExpertRollout:
    """The task's scripted expert (privileged state), as a reference row."""

    name = "expert"

    def __init__(self, seed: int = 0, noise: float = 0.0, **_: Any) -> None:
        self.seed, self.noise = seed, noise
        self._env: Any = None
        self._expert: Any = None

    def reset(self, env: Any) -> None:
        from sim2real.sim.experts import make_expert

        self._env = env
        self._expert = make_expert(env.scene, np.random.default_rng([self.seed, env.scene.seed]), self.noise)

    def act(self, observation: dict[str, Any], instruction: str) -> np.ndarray:
        return self._expert.act(self._env.backend.privileged_state())


@ROLLOUT_POLICIES.register("random")
class RandomRollout:
    """Uniform random actions within the env's action space (seeded per episode)."""

    name = "random"

    def __init__(self, seed: int = 0, **_: Any) -> None:
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._space: Any = None

    def reset(self, env: Any) -> None:
        self._rng = np.random.default_rng([self.seed, env.scene.seed])
        self._space = env.action_space

    def act(self, observation: dict[str, Any], instruction: str) -> np.ndarray:
        return self._rng.uniform(self._space.low, self._space.high).astype(np.float32)


class CheckpointRollout:
    """A trained checkpoint of any registered policy type (``vla``, ``bc``, ...: every name in
    :data:`sim2real.policies.registry.POLICIES`) through :func:`sim2real.policies.load_policy`;
    evaluation refuses a checkpoint of another type than the name it runs under."""

    name = "vla"
    #: built from a checkpoint folder (``checkpoint=``): the harness checks it before any rollout
    #: and draws the attention map and replay metrics from it
    from_checkpoint = True
    options = ("checkpoint", "temporal_ensemble", "execute_steps", "decoding")

    def __init__(
        self,
        checkpoint: str | None = None,
        num_threads: int | None = None,
        temporal_ensemble: float | None = PolicyConfig.temporal_ensemble,
        execute_steps: int = PolicyConfig.execute_steps,
        decoding: str = PolicyConfig.decoding,
        **_: Any,
    ) -> None:
        if not checkpoint:
            raise ValueError("a trained policy needs policy.checkpoint=<path to a checkpoint folder>")
        from sim2real.policies import load_policy

        self.policy = load_policy(
            Path(checkpoint),
            num_threads=num_threads,
            temporal_ensemble=temporal_ensemble,
            execute_steps=execute_steps,
            decoding=decoding,
        )
        self.name = self.policy.policy_type
        self.checkpoint = str(checkpoint)

    def reset(self, env: Any) -> None:
        self.policy.reset()

    def act(self, observation: dict[str, Any], instruction: str) -> np.ndarray:
        action = np.asarray(self.policy.act(observation, instruction), np.float32)
        if action.shape != (ACTION_DIM,):
            raise ValueError(f"policy returned an action of shape {action.shape}, the env takes ({ACTION_DIM},)")
        return action


def _trained_policy_names() -> list[str]:
    """The registered trainable policy types (empty when torch, the ``train`` extra, is missing)."""
    try:
        from sim2real.policies import POLICIES
    except ImportError:
        return []
    return POLICIES.names()


def rollout_policy_class(name: str) -> type:
    """The class that rolls out policy ``name``: one registered in :data:`ROLLOUT_POLICIES`, or
    :class:`CheckpointRollout` for a trainable policy type; the error lists every known name."""
    if name in ROLLOUT_POLICIES:
        return ROLLOUT_POLICIES.get(name)
    trained = _trained_policy_names()
    if name in trained:
        return CheckpointRollout
    known = ", ".join(sorted([*ROLLOUT_POLICIES.names(), *trained]))
    raise UnknownNameError(f"unknown policy {name!r}; known policies: {known}")


def is_trained_policy(name: str) -> bool:
    """Whether policy ``name`` is a trained one, built from ``policy.checkpoint``."""
    return bool(getattr(rollout_policy_class(name), "from_checkpoint", False))


def make_rollout_policy(name: str, **options: Any) -> RolloutPolicy:
    return rollout_policy_class(name)(**options)


# ---------------------------------------------------------------------------------------------
# Policies from outside the project: an importable object, a websocket server
# ---------------------------------------------------------------------------------------------


class PolicySetupError(UsageError):
    """A python or remote policy that cannot run here; found before the first rollout."""


class PolicyEpisodeError(RuntimeError):
    """The policy failed during one episode (a server error, a lost connection, a late reply, an
    action of the wrong shape): that episode ends as a failure and the error is counted."""


def rollout_option_keys(name: str) -> tuple[str, ...]:
    """The ``policy.*`` settings the rollout policy ``name`` takes beyond its name (its class's
    ``options``); empty for an unknown name (validation names it)."""
    try:
        return tuple(getattr(rollout_policy_class(name), "options", ()))
    except UnknownNameError:
        return ()


def check_rollout_policy(name: str, options: dict[str, Any], task: str, seed: int = 0,
                         randomization: str | dict[str, Any] = "default",
                         cameras: tuple[str, ...] = ("front", "wrist")) -> None:  # fmt: skip
    """Build policy ``name`` and, when its class has ``preflight``, run it on the first
    in-distribution scene of ``task``; raise :class:`PolicySetupError` naming what is wrong."""
    cls = rollout_policy_class(name)
    if not hasattr(cls, "preflight"):
        return
    from sim2real.envs import Sim2RealEnv
    from sim2real.evaluation.closed_loop import scene_seed
    from sim2real.randomizers import VARIANTS, resolve_randomization, sample_scene

    policy = cls(seed=seed, **options)
    env = Sim2RealEnv(task, cameras=cameras)
    try:
        scene = sample_scene(task, scene_seed(seed, "in_distribution", task, 0), resolve_randomization(randomization),
                             VARIANTS["in_distribution"])  # fmt: skip
        observation, _ = env.reset(options={"scene": scene})
        policy.preflight(env, observation, scene.instruction)
    finally:
        env.close()
        getattr(policy, "close", lambda: None)()


def _accepts(function: Any, parameter: str) -> bool:
    try:
        return parameter in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def load_target(target: str | None) -> Any:
    """The object named by ``package.module:Name`` (``Name`` may be dotted)."""
    if not target or ":" not in target:
        raise PolicySetupError(f"policy.target={target}: expected package.module:ClassName (an importable object "
                               "with reset() and act(observation, instruction))")  # fmt: skip
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise PolicySetupError(f"policy.target={target}: no module named {error.name!r}") from None
        raise PolicySetupError(f"policy.target={target}: importing {module_name} failed: {error}") from None
    except Exception as error:  # the module itself raised on import
        raise PolicySetupError(f"policy.target={target}: importing {module_name} failed: "
                               f"{type(error).__name__}: {error}") from None  # fmt: skip
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise PolicySetupError(f"policy.target={target}: {module_name} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    return obj


@ROLLOUT_POLICIES.register("python")
class PythonRollout:
    """Any importable object with ``reset()`` and ``act(observation, instruction)``.

    ``target`` is ``package.module:Name``: a class (or factory) called with ``kwargs`` (and
    ``seed`` when it takes one and ``kwargs`` does not give it), or an object used as it is.
    ``observation`` is ``{"image": {camera: uint8 (H, W, 3)}, "state": float32 (14,)}`` (state:
    TCP position (3, m), roll/pitch/yaw (3, rad), gripper opening fraction (1, 1 = open), joint
    positions (7, rad)); ``instruction`` a str; ``act`` returns float32 (7,) = [dx, dy, dz (m),
    droll, dpitch, dyaw (rad), gripper (0 = closed, 1 = open)]. A ``reset`` that declares a
    parameter named ``env`` receives the env (privileged access, e.g. to wrap the expert).
    """

    name = "python"
    options = ("target", "kwargs")

    def __init__(self, target: str | None = None, kwargs: dict[str, Any] | None = None, seed: int = 0,
                 **_: Any) -> None:  # fmt: skip
        self.target = target
        if kwargs is not None and not isinstance(kwargs, dict):
            raise PolicySetupError(f"policy.kwargs={kwargs!r}: expected a dict of keyword arguments, e.g. {{gain:2}}")
        obj = load_target(target)
        kwargs = dict(kwargs or {})
        if inspect.isclass(obj) or (callable(obj) and not hasattr(obj, "act")):
            if "seed" not in kwargs and _accepts(obj, "seed"):
                kwargs["seed"] = seed
            try:
                obj = obj(**kwargs)
            except TypeError as error:
                raise PolicySetupError(f"policy.target={target}: calling it with policy.kwargs={kwargs} "
                                       f"failed: {error}") from None  # fmt: skip
        elif kwargs:
            raise PolicySetupError(f"policy.target={target} is an object, not a class: policy.kwargs must be empty")
        missing = [m for m in ("reset", "act") if not callable(getattr(obj, m, None))]
        if missing:
            raise PolicySetupError(f"policy.target={target}: {type(obj).__name__} lacks "
                                   f"{' and '.join(f'{m}()' for m in missing)}; a policy needs reset() and "
                                   "act(observation, instruction) -> float32 (7,)")  # fmt: skip
        self.policy = obj
        self._reset_takes_env = _accepts(obj.reset, "env")

    def reset(self, env: Any) -> None:
        if self._reset_takes_env:
            self.policy.reset(env=env)
        else:
            self.policy.reset()

    def act(self, observation: dict[str, Any], instruction: str) -> np.ndarray:
        action = np.asarray(self.policy.act(observation, instruction))
        problem = _action_problem(action)
        if problem:
            raise PolicyEpisodeError(f"{self.target}: {problem}")
        return action.astype(np.float32)

    def preflight(self, env: Any, observation: dict[str, Any], instruction: str) -> None:
        """Reset and act once on the first scene; the action must be finite float (7,)."""
        self.reset(env)
        try:
            self.act(observation, instruction)
        except PolicyEpisodeError as error:
            raise PolicySetupError(f"policy.target={error}") from None


def _action_problem(action: np.ndarray) -> str | None:
    if action.shape != (ACTION_DIM,) or not np.issubdtype(action.dtype, np.number):
        return f"act() returned {action.dtype} {action.shape}; expected float32 ({ACTION_DIM},)"
    if not np.isfinite(action).all():
        return f"act() returned non-finite values {action.tolist()}"
    return None


@ROLLOUT_POLICIES.register("remote")
class RemoteRollout:
    """A policy server speaking the openpi websocket protocol, through a :mod:`sim2real.remote.mapping`.

    Each chunk the server returns is played ``execute_steps`` actions at a time (the mapping's,
    or ``replan_steps``). Timeouts (s): ``connect_timeout`` for the connection and metadata,
    ``reply_timeout`` for each reply, ``first_reply_timeout`` for the one reply of the check
    before the rollouts. A server error, a lost connection or a late reply during an episode
    raises :class:`PolicyEpisodeError` (the episode fails, the error is counted); the next
    episode connects again.
    """

    name = "remote"
    options = ("host", "port", "api_key", "mapping", "connect_timeout", "reply_timeout", "first_reply_timeout",
               "replan_steps")  # fmt: skip

    def __init__(
        self,
        host: str = PolicyConfig.host,
        port: int | None = PolicyConfig.port,
        api_key: str | None = PolicyConfig.api_key,
        mapping: str = PolicyConfig.mapping,
        connect_timeout: float = PolicyConfig.connect_timeout,
        reply_timeout: float = PolicyConfig.reply_timeout,
        first_reply_timeout: float = PolicyConfig.first_reply_timeout,
        replan_steps: int | None = PolicyConfig.replan_steps,
        **_: Any,
    ) -> None:
        from sim2real.remote.client import RemotePolicyClient, server_uri
        from sim2real.remote.mapping import REMOTE_MAPPINGS

        if replan_steps is not None and replan_steps < 1:
            raise PolicySetupError(f"policy.replan_steps={replan_steps}: must be >= 1 (or null: the mapping's)")
        if min(connect_timeout, reply_timeout, first_reply_timeout) <= 0:
            timeouts = {"connect_timeout": connect_timeout, "reply_timeout": reply_timeout,
                        "first_reply_timeout": first_reply_timeout}  # fmt: skip
            given = ", ".join(f"policy.{key}={value}" for key, value in timeouts.items())
            raise PolicySetupError(f"{given}: each must be > 0 seconds")
        self.first_reply_timeout = first_reply_timeout
        self.mapping = REMOTE_MAPPINGS.get(mapping).with_execute_steps(replan_steps)
        self.client = RemotePolicyClient(server_uri(host, port), api_key, connect_timeout, reply_timeout)
        self._plan: deque[np.ndarray] = deque()
        self._first_request = True
        self._env_cameras: tuple[str, ...] = ()

    def _connect(self) -> None:
        from sim2real.remote.mapping import MappingError

        metadata = self.client.connect()
        try:
            self.mapping.check_metadata(metadata, self._env_cameras)
        except MappingError as error:
            self.client.close()
            raise PolicySetupError(f"policy=remote {self.client.uri}: {error}") from None

    def _ask(self, observation: dict[str, Any], instruction: str, timeout: float | None = None) -> np.ndarray:
        request = self.mapping.encode(observation, instruction, self.client.metadata)
        if self._first_request and self.mapping.reset == "flag":
            request[self.mapping.reset_key] = True
        reply = self.client.infer(request, timeout)
        self._first_request = False
        return self.mapping.decode(reply)

    def _bind(self, env: Any) -> None:
        self._env_cameras = tuple(env.cameras)

    def preflight(self, env: Any, observation: dict[str, Any], instruction: str) -> None:
        """Connect, check the metadata against the env, and ask once on the first scene (waiting up
        to ``first_reply_timeout``: a server may compile its model on its first request)."""
        from sim2real.remote.client import RemoteError
        from sim2real.remote.mapping import MappingError

        self._bind(env)
        try:
            self._connect()
            self._first_request = True
            self._ask(observation, instruction, self.first_reply_timeout)
        except (RemoteError, MappingError) as error:
            raise PolicySetupError(f"policy=remote (mapping {self.mapping.name}): {error}") from None
        finally:
            self.close()

    def reset(self, env: Any) -> None:
        from sim2real.remote.client import RemoteError

        self._bind(env)
        self._plan.clear()
        self._first_request = True
        try:
            if self.mapping.reset == "reconnect" or not self.client.connected:
                self._connect()
        except (RemoteError, PolicySetupError) as error:
            raise PolicyEpisodeError(str(error)) from None

    def act(self, observation: dict[str, Any], instruction: str) -> np.ndarray:
        from sim2real.remote.client import RemoteError
        from sim2real.remote.mapping import MappingError

        if not self._plan:
            try:
                chunk = self._ask(observation, instruction)
            except (RemoteError, MappingError) as error:
                self.client.close()
                raise PolicyEpisodeError(str(error)) from None
            self._plan.extend(chunk[: self.mapping.execute_steps])
        return self._plan.popleft()

    def close(self) -> None:
        self.client.close()
