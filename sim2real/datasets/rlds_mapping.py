"""Declarative mappings from a foreign dataset's keys onto the canonical episode.

:class:`EpisodeMapping` holds what every format's mapping says (which key holds each camera, the
state and the action, how the gripper is encoded, the action space, where the instruction is, how
to fill the canonical metadata); :func:`map_state` and :func:`map_action` apply it. RLDS mappings
(:class:`RLDSMapping`, flat Example keys) are registered by name in :data:`RLDS_MAPPINGS`; LeRobot's
(:class:`~sim2real.datasets.lerobot_format.LeRobotMapping`, feature names) in ``LEROBOT_MAPPINGS``.

- ``sim2real``: datasets written by :class:`~sim2real.datasets.rlds_format.RLDSEpisodeWriter`
  (cameras discovered from ``features.json``; exact round trip).
- ``bridge``: BridgeData V2 as published in Open X-Embodiment / Octo (WidowX 250, 5 Hz).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from sim2real.datasets.schema import STATE_DIM, DatasetError
from sim2real.registry import Registry

#: Gripper conventions: name -> function from the foreign gripper value to canonical (1 = open, in [0, 1]).
GRIPPER_CONVENTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "open_is_1": lambda g: g,  # already canonical: [0, 1], 1 = open
    "closed_is_1": lambda g: 1.0 - g,  # [0, 1], 1 = closed
    "signed_open_is_1": lambda g: (g + 1.0) / 2.0,  # [-1, 1], +1 = open
    "signed_closed_is_1": lambda g: (1.0 - g) / 2.0,  # [-1, 1], +1 = closed
}


#: Action spaces a mapping may declare (``metadata.extras["action_space"]`` of the episodes it reads):
#: ``ee_delta`` is the canonical 7-D end-effector delta; the others keep the recorded actions as they
#: are, (T, A), so that metrics that need end-effector deltas skip them.
ACTION_SPACES: tuple[str, ...] = ("ee_delta", "joint_position", "unknown")


@dataclass(frozen=True)
class EpisodeMapping:
    """How one foreign dataset's keys map onto the canonical episode; the fields every format's mapping shares.

    Attributes:
        name: the mapping's registry name.
        cameras: canonical camera name -> image key; ``None`` discovers the format's own camera keys.
        state_key: per-step state tensor, float (D,).
        state_slots: canonical :data:`~sim2real.datasets.schema.STATE_NAMES` index of each of the D
            state entries; unfilled canonical entries are NaN (unknown). ``None``: D must be 14.
        action_key: per-step action tensor, float (A,).
        action_indices: which A entries form the canonical 7-D action, in canonical order
            (``action_space="ee_delta"`` only; other action spaces keep all A entries).
        gripper: key of :data:`GRIPPER_CONVENTIONS` for the action's gripper entry.
        instruction_key: per-step text with the language instruction (constant per episode).
        image_size: (H, W) to resize every camera to (bilinear); ``None`` keeps the stored size.
        require_is_last: whether every episode must end with ``is_last`` True.
        sim2real_metadata: read the full canonical metadata written by our writer; otherwise the
            metadata is filled from the fields below and ``extras_keys``.
        extras_keys: extras name -> episode-level key copied into ``metadata.extras``.
        task, robot, backend, control_hz: metadata for foreign data (control rate in Hz).
        action_space: one of :data:`ACTION_SPACES`, written to ``metadata.extras["action_space"]``.
    """

    name: str
    cameras: Mapping[str, str] | None = None
    state_key: str = ""
    state_slots: tuple[int, ...] | None = None
    action_key: str = ""
    action_indices: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)
    gripper: str = "open_is_1"
    instruction_key: str = ""
    image_size: tuple[int, int] | None = None
    require_is_last: bool = True
    sim2real_metadata: bool = False
    extras_keys: Mapping[str, str] = field(default_factory=dict)
    task: str = ""
    robot: str = ""
    backend: str = "real"
    control_hz: float = 10.0
    action_space: str = "ee_delta"

    def __post_init__(self) -> None:
        if self.gripper not in GRIPPER_CONVENTIONS:
            known = ", ".join(sorted(GRIPPER_CONVENTIONS))
            raise ValueError(f"mapping {self.name!r}: unknown gripper convention {self.gripper!r}; known: {known}")
        if len(self.action_indices) != 7:
            raise ValueError(f"mapping {self.name!r}: action_indices must pick 7 entries, got {self.action_indices}")
        if self.action_space not in ACTION_SPACES:
            known = ", ".join(ACTION_SPACES)
            raise ValueError(f"mapping {self.name!r}: unknown action_space {self.action_space!r}; known: {known}")


def map_state(state: np.ndarray, slots: tuple[int, ...] | None, where: str, key: str) -> np.ndarray:
    """A foreign state, float (T, D), as the canonical float32 (T, 14): entry ``i`` goes to canonical
    slot ``slots[i]`` and unfilled slots are NaN; ``slots=None`` requires D = 14."""
    if not np.issubdtype(state.dtype, np.floating):
        raise DatasetError(f"{where}: key {key!r} is {state.dtype}, expected a float dtype")
    if slots is None:
        if state.ndim != 2 or state.shape[1] != STATE_DIM:
            raise DatasetError(f"{where}: key {key!r} has shape {state.shape}, expected (T, {STATE_DIM})")
        return state.astype(np.float32)
    if state.ndim != 2 or state.shape[1] != len(slots):
        raise DatasetError(f"{where}: key {key!r} has shape {state.shape}, mapping expects (T, {len(slots)})")
    out = np.full((state.shape[0], STATE_DIM), np.nan, dtype=np.float32)
    out[:, list(slots)] = state
    return out


def map_action(action: np.ndarray, mapping: EpisodeMapping, where: str, key: str) -> np.ndarray:
    """A foreign action, float (T, A), as the canonical float32 (T, 7) (``action_space="ee_delta"``:
    entries ``action_indices``, gripper converted); any other action space keeps float32 (T, A)."""
    if not np.issubdtype(action.dtype, np.floating) or action.ndim != 2:
        raise DatasetError(f"{where}: key {key!r} is {action.dtype} {action.shape}, expected float (T, A)")
    if mapping.action_space != "ee_delta":
        return action.astype(np.float32)
    indices = list(mapping.action_indices)
    if action.shape[1] <= max(indices):
        raise DatasetError(f"{where}: key {key!r} is {action.dtype} {action.shape}, expected float (T, >= 7)")
    out = action[:, indices].astype(np.float32)
    out[:, 6] = GRIPPER_CONVENTIONS[mapping.gripper](out[:, 6])
    return out


@dataclass(frozen=True)
class RLDSMapping(EpisodeMapping):
    """How one RLDS dataset maps onto the canonical episode (:class:`EpisodeMapping`); keys are flat
    Example keys, and ``cameras=None`` discovers sim2real camera keys (``observation/image`` =
    front, ``observation/<cam>_image``)."""

    state_key: str = "steps/observation/state"
    action_key: str = "steps/action"
    instruction_key: str = "steps/language_instruction"


RLDS_MAPPINGS: Registry[RLDSMapping] = Registry("RLDS mapping")

SIM2REAL = RLDS_MAPPINGS.register("sim2real")(RLDSMapping(name="sim2real", sim2real_metadata=True))

#: BridgeData V2 (Open X-Embodiment / Octo layout). Its state is [x, y, z, roll, pitch, yaw,
#: gripper], the first 7 canonical slots; joint positions are unknown (NaN). ``image_0`` is
#: the main over-the-shoulder view; ``image_1`` and ``image_2`` are further views, mapped onto
#: ``wrist`` and ``side`` so that two-camera policies get two views; ``image_3`` (all zeros in
#: the debug set) is left out. The ``has_image_*`` flags are ignored: they are False although
#: images exist. Episodes of the debug set are cut at 10 steps, so ``is_last`` is not required.
BRIDGE = RLDS_MAPPINGS.register("bridge")(
    RLDSMapping(
        name="bridge",
        cameras={
            "front": "steps/observation/image_0",
            "wrist": "steps/observation/image_1",
            "side": "steps/observation/image_2",
        },
        state_slots=(0, 1, 2, 3, 4, 5, 6),
        gripper="open_is_1",
        require_is_last=False,
        extras_keys={
            "source_file_path": "episode_metadata/file_path",
            "source_episode_id": "episode_metadata/episode_id",
        },
        task="bridge",
        robot="widowx250",
        backend="real",
        control_hz=5.0,
    )
)
