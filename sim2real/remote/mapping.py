"""Declarative mappings between our env and a remote policy's request and reply conventions.

A :class:`RemoteMapping` says which key each camera image, the state and the instruction travel
under, at what image size, in which state layout, and how a reply's ``actions`` (chunk, D)
become our actions: position and rotation scale, rotation representation, gripper values and
how many actions of each chunk are played before asking again. Mappings are registered by name
in :data:`REMOTE_MAPPINGS`; state layouts in :data:`STATE_LAYOUTS`.

Our side (see :mod:`sim2real.sim.control`): observations ``{"image": {camera: uint8 (H, W, 3)},
"state": float32 (14,)}`` with the state = TCP position (3, m, robot base frame), roll / pitch /
yaw (3, rad, extrinsic xyz), gripper opening fraction (1, 1 = open), joint positions (7, rad);
actions float32 (7,) = [dx, dy, dz (m), droll, dpitch, dyaw (rad), gripper (0 = closed,
1 = open)] at 10 Hz, the rotation delta applied on the left of the current orientation.

Presets:

``sim2real`` (our own ``sim2real serve``): request ``observation/image/<camera>`` uint8 at the
server's ``image_size``, ``observation/state`` float32 (14,), ``prompt`` str; reply ``actions``
(chunk, 7) in our convention, played one action per request (the server applies the policy's
action selection); each episode's first request carries ``reset: True``. Exact when the server's
image size is the rendered one; otherwise the images are resized here (PIL bilinear on uint8),
close to but not bit-equal with the in-process model's own resize.

``libero`` (openpi's ``examples/libero/main.py`` client of a pi0 / pi0.5 LIBERO checkpoint):
request ``observation/image`` (front camera) and ``observation/wrist_image`` (wrist camera),
uint8 224x224x3 resized with zero padding (bilinear), ``observation/state`` float32 (8,) = end
effector position (3), its orientation as an axis-angle vector (3), the two finger joint
positions (2), and ``prompt`` str; reply ``actions`` (chunk, 7) = robosuite OSC_POSE delta
commands in [-1, 1]: position (3), axis-angle rotation (3), gripper (-1 = open, +1 = close);
5 actions of each chunk are played before the next request (openpi's ``replan_steps``).
Approximate, by construction:

- Scale: an OSC_POSE input of 1 commands 0.05 m and 0.5 rad (robosuite's default controller
  limits) per 20 Hz LIBERO step; we map it to 0.05 m and 0.5 rad per 10 Hz step of ours (our
  controller then clips rotation to its own per-step limit). The motion per second differs.
- Rotation: the axis-angle delta becomes the roll/pitch/yaw of the same rotation matrix, applied
  on the left as OSC applies it (exact as a rotation; the frames are not the same robot's).
- State: our TCP frame, base-frame origin and roll/pitch/yaw become LIBERO's world-frame end
  effector position and axis-angle orientation only up to a fixed offset and rotation that
  differ between the two robots; the finger positions are the opening fraction times 0.04 m
  (+q, -q), Panda's finger travel.
- Images: our cameras stand where ours stand, not where LIBERO's agent-view and eye-in-hand
  cameras do; they are sent upright (openpi's client flips LIBERO's renders by 180 degrees to
  make them upright).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

from sim2real.contracts.actions import ACTION_DIM, STATE_DIM
from sim2real.contracts.geometry import matrix_to_rpy, rpy_to_matrix
from sim2real.registry import Registry

#: Panda's finger travel (m) per finger at a fully open gripper
PANDA_FINGER_TRAVEL = 0.04


class MappingError(ValueError):
    """A reply (or observation) that the mapping cannot convert; the message says what differs."""


# ---------------------------------------------------------------------------------------------
# State layouts: our float32 (14,) state -> the state a server expects
# ---------------------------------------------------------------------------------------------

#: name -> (dimension, function of our (14,) state returning float32 (dimension,))
STATE_LAYOUTS: Registry[tuple[int, Callable[[np.ndarray], np.ndarray]]] = Registry("state layout")


def _sim2real_state(state: np.ndarray) -> np.ndarray:
    return np.asarray(state, np.float32)


def _libero_state(state: np.ndarray) -> np.ndarray:
    """(14,) ours -> (8,) eef position (m), axis-angle orientation (rad), finger qpos (m, +q, -q)."""
    state = np.asarray(state, np.float64)
    rotvec = Rotation.from_matrix(rpy_to_matrix(state[3:6])).as_rotvec()
    finger = float(np.clip(state[6], 0.0, 1.0)) * PANDA_FINGER_TRAVEL
    return np.concatenate([state[:3], rotvec, [finger, -finger]]).astype(np.float32)


STATE_LAYOUTS.register("sim2real")((STATE_DIM, _sim2real_state))
STATE_LAYOUTS.register("libero")((8, _libero_state))

ROTATIONS = ("rpy", "axis_angle")
RESETS = ("flag", "reconnect", "none")


@dataclass(frozen=True)
class RemoteMapping:
    """How our observations become a request and a reply's actions become ours.

    Attributes:
        name: the preset's name.
        images: request key -> our camera name; each image uint8 (H, W, 3).
        image_size: square size (px) the images are resized to with zero padding, or None for
            the size the server's metadata names (resized when it differs from the rendered
            size), else as rendered.
        state_key: request key of the state, or None to send no state.
        state_layout: a :data:`STATE_LAYOUTS` name.
        prompt_key: request key of the instruction (str).
        action_key: reply key of the action chunk (chunk, action_dim).
        action_dim: D of the reply's actions.
        position_scale: metres per unit of the reply's position components.
        rotation_scale: radians per unit of the reply's rotation components.
        rotation: ``rpy`` (roll/pitch/yaw deltas, ours) or ``axis_angle`` (a rotation vector).
        gripper_open, gripper_closed: the reply's gripper values for open and closed; values
            between map linearly onto our opening fraction, clipped to [0, 1].
        execute_steps: actions of each chunk played before the next request (fewer when the
            chunk is shorter).
        reset: how an episode starts afresh on the server: ``flag`` (the episode's first request
            carries ``reset_key: True``), ``reconnect`` (a fresh connection, so a fresh
            server-side policy state) or ``none`` (the server is stateless per request).
        reset_key: the request key of the ``flag`` reset.
        metadata_action_dim, metadata_cameras, metadata_image_size, metadata_state_dim: the
            server metadata keys checked against the env and this mapping when present.
    """

    name: str
    images: Mapping[str, str]
    image_size: int | None
    state_key: str | None
    state_layout: str
    prompt_key: str
    action_dim: int
    position_scale: float
    rotation_scale: float
    rotation: str
    gripper_open: float
    gripper_closed: float
    execute_steps: int
    reset: str
    action_key: str = "actions"
    reset_key: str = "reset"
    metadata_action_dim: str = "action_dim"
    metadata_cameras: str = "cameras"
    metadata_image_size: str = "image_size"
    metadata_state_dim: str = "state_dim"
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        STATE_LAYOUTS.get(self.state_layout)
        if self.rotation not in ROTATIONS:
            raise ValueError(f"mapping {self.name}: rotation {self.rotation!r}; expected one of {list(ROTATIONS)}")
        if self.reset not in RESETS:
            raise ValueError(f"mapping {self.name}: reset {self.reset!r}; expected one of {list(RESETS)}")
        if self.action_dim != ACTION_DIM:
            raise ValueError(f"mapping {self.name}: action_dim {self.action_dim}; the mappings convert 7-D actions")
        if self.execute_steps < 1:
            raise ValueError(f"mapping {self.name}: execute_steps must be >= 1, got {self.execute_steps}")
        if self.gripper_open == self.gripper_closed:
            raise ValueError(f"mapping {self.name}: gripper_open and gripper_closed must differ")

    @property
    def cameras(self) -> tuple[str, ...]:
        """Our cameras the requests need."""
        return tuple(dict.fromkeys(self.images.values()))

    @property
    def state_dim(self) -> int:
        return STATE_LAYOUTS.get(self.state_layout)[0]

    def with_execute_steps(self, steps: int | None) -> RemoteMapping:
        """This mapping playing ``steps`` actions per chunk (None: its own)."""
        return self if steps is None else replace(self, execute_steps=steps)

    # -----------------------------------------------------------------------------------------

    def request_size(self, metadata: Mapping[str, Any]) -> int | None:
        """Side (px) of the images sent: the mapping's ``image_size``, else the server's metadata
        ``image_size`` (int or [H, W], square), else None (as rendered)."""
        size = metadata.get(self.metadata_image_size)
        if size is None:
            return self.image_size
        try:
            height, width = (int(v) for v in np.broadcast_to(np.asarray(size), (2,)))
        except (TypeError, ValueError):
            raise MappingError(f"metadata {self.metadata_image_size}={size!r}: expected an int or [H, W]") from None
        if height != width:
            raise MappingError(f"the server takes {height}x{width} images (metadata {self.metadata_image_size}); "
                               "the mappings send square images")  # fmt: skip
        if self.image_size is not None and height != self.image_size:
            raise MappingError(f"the server takes {height}x{width} images (metadata {self.metadata_image_size}); "
                               f"mapping {self.name} sends {self.image_size}x{self.image_size}")  # fmt: skip
        return height

    def encode(
        self, observation: Mapping[str, Any], instruction: str, metadata: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The request for ``observation`` ({"image": {camera: uint8 (H, W, 3)}, "state": (14,)});
        ``metadata``: the server's, for the image size when the mapping names none."""
        size = self.request_size(metadata or {})
        request: dict[str, Any] = {}
        images = observation["image"]
        for key, camera in self.images.items():
            if camera not in images:
                raise MappingError(
                    f"mapping {self.name}: {key} needs camera {camera!r}; the env renders {list(images)}"
                )
            image = np.asarray(images[camera], np.uint8)
            request[key] = image if size is None else resize_with_pad(image, size)
        if self.state_key is not None:
            request[self.state_key] = STATE_LAYOUTS.get(self.state_layout)[1](observation["state"])
        request[self.prompt_key] = str(instruction)
        return request

    def decode(self, reply: Mapping[str, Any]) -> np.ndarray:
        """Our actions, float32 (chunk, 7), from a reply whose ``action_key`` is (chunk, D)."""
        if self.action_key not in reply:
            raise MappingError(f"reply has no {self.action_key!r} (keys: {sorted(map(str, reply))})")
        actions = np.asarray(reply[self.action_key])
        if actions.ndim == 1:
            actions = actions[None]
        if actions.ndim != 2 or actions.shape[1] != self.action_dim or actions.shape[0] < 1:
            raise MappingError(f"reply {self.action_key!r} has shape {actions.shape}; expected (chunk, "
                               f"{self.action_dim}) for mapping {self.name}")  # fmt: skip
        if not np.issubdtype(actions.dtype, np.number) or not np.isfinite(actions).all():
            raise MappingError(f"reply {self.action_key!r} holds non-finite or non-numeric values")
        actions = actions.astype(np.float64)
        ours = np.empty((len(actions), ACTION_DIM))
        ours[:, :3] = actions[:, :3] * self.position_scale
        rotation = actions[:, 3:6] * self.rotation_scale
        if self.rotation == "axis_angle":
            rotation = np.stack([matrix_to_rpy(m) for m in Rotation.from_rotvec(rotation).as_matrix()])
        ours[:, 3:6] = rotation
        opening = (actions[:, 6] - self.gripper_closed) / (self.gripper_open - self.gripper_closed)
        ours[:, 6] = np.clip(opening, 0.0, 1.0) + 0.0  # + 0.0: no negative zero
        return ours.astype(np.float32)

    def check_metadata(self, metadata: Mapping[str, Any], env_cameras: tuple[str, ...]) -> None:
        """Raise :class:`MappingError` when the server's metadata does not fit the env or this mapping.

        ``env_cameras``: the cameras the env renders. Only keys present in the metadata are
        checked (openpi's LIBERO server sends ``{}``)."""
        dim = metadata.get(self.metadata_action_dim)
        if dim is not None and dim != self.action_dim:
            raise MappingError(f"the server's actions are {dim}-D (metadata {self.metadata_action_dim}); mapping "
                               f"{self.name} and the env take {self.action_dim}-D actions")  # fmt: skip
        cameras = metadata.get(self.metadata_cameras)
        if cameras is not None:
            missing = [c for c in cameras if c not in env_cameras]
            if missing:
                raise MappingError(f"the server needs cameras {list(cameras)} (metadata {self.metadata_cameras}); "
                                   f"the env renders {list(env_cameras)}, not {missing}")  # fmt: skip
        self.request_size(metadata)
        state_dim = metadata.get(self.metadata_state_dim)
        if state_dim is not None and self.state_key is not None and state_dim != self.state_dim:
            raise MappingError(f"the server takes a {state_dim}-D state (metadata {self.metadata_state_dim}); "
                               f"mapping {self.name} sends {self.state_dim}-D ({self.state_layout})")  # fmt: skip
        missing = [c for c in self.cameras if c not in env_cameras]
        if missing:
            raise MappingError(f"mapping {self.name} needs cameras {missing}; the env renders {list(env_cameras)}")


def resize_with_pad(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (size, size, 3): scaled (bilinear) to fit, centred on black."""
    height, width = image.shape[:2]
    if (height, width) == (size, size):
        return image
    ratio = max(height / size, width / size)
    new_h, new_w = int(height / ratio), int(width / ratio)
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), resample=Image.Resampling.BILINEAR))
    out = np.zeros((size, size, image.shape[2]), np.uint8)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    out[top : top + new_h, left : left + new_w] = resized
    return out


REMOTE_MAPPINGS: Registry[RemoteMapping] = Registry("remote mapping")

REMOTE_MAPPINGS.register("sim2real")(
    RemoteMapping(
        name="sim2real",
        images={"observation/image/front": "front", "observation/image/wrist": "wrist"},
        image_size=None,
        state_key="observation/state",
        state_layout="sim2real",
        prompt_key="prompt",
        action_dim=ACTION_DIM,
        position_scale=1.0,
        rotation_scale=1.0,
        rotation="rpy",
        gripper_open=1.0,
        gripper_closed=0.0,
        execute_steps=1,
        reset="flag",
    )
)

REMOTE_MAPPINGS.register("libero")(
    RemoteMapping(
        name="libero",
        images={"observation/image": "front", "observation/wrist_image": "wrist"},
        image_size=224,
        state_key="observation/state",
        state_layout="libero",
        prompt_key="prompt",
        action_dim=7,
        position_scale=0.05,
        rotation_scale=0.5,
        rotation="axis_angle",
        gripper_open=-1.0,
        gripper_closed=1.0,
        execute_steps=5,
        reset="none",
        notes=("scale: OSC_POSE 0.05 m / 0.5 rad per unit at 20 Hz, played at 10 Hz",
               "state: LIBERO's world frame and eef frame differ from our base and TCP frames",
               "cameras: ours, not LIBERO's agent-view and eye-in-hand placements"),
    )
)  # fmt: skip
