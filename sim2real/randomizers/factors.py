"""Scalar summaries of a SceneSpec's randomization factors, for dataset histograms and the
per-factor breakdown of evaluation results."""

from __future__ import annotations

import numpy as np

from sim2real.randomizers.sampler import FRONT_CAMERA
from sim2real.sim.scene_spec import SceneSpec

#: Factors whose values are categories rather than numbers.
CATEGORICAL = ("object_shape", "table_texture")


def scene_factors(scene: SceneSpec) -> dict[str, float | str]:
    """One value per factor: light intensity (mean over lights, before the colour
    temperature), number of lights, ambient, camera offset (m), fov (deg) and roll (rad),
    distractor count, first object's shape, friction and mass (kg), dynamics scales,
    latency (steps), sensor-noise levels, table texture family."""
    n = max(len(scene.lights), 1)
    front = scene.camera("front") if any(c.name == "front" for c in scene.cameras) else scene.cameras[0]
    target = scene.objects[0]
    texture = scene.surfaces.table.texture
    return {
        "light_intensity": float(np.mean([max(light.diffuse) * np.sqrt(n) for light in scene.lights])),
        "num_lights": float(len(scene.lights)),
        "ambient": float(sum(light.ambient[0] for light in scene.lights)),
        "camera_offset_m": float(np.linalg.norm(np.subtract(front.pos, FRONT_CAMERA.pos))),
        "camera_fovy_deg": float(front.fovy),
        "camera_roll_rad": float(front.roll),
        "distractors": float(sum(o.role == "distractor" for o in scene.objects)),
        "object_shape": target.shape,
        "object_friction": float(target.friction),
        "object_mass_kg": float(target.mass),
        "joint_damping_scale": float(scene.dynamics.joint_damping_scale),
        "actuator_gain_scale": float(scene.dynamics.actuator_gain_scale),
        "action_latency_steps": float(scene.dynamics.action_latency_steps),
        "image_noise_std": float(scene.sensor_noise.image_noise_std),
        "blur_sigma": float(scene.sensor_noise.blur_sigma),
        "jpeg_quality": float(scene.sensor_noise.jpeg_quality),
        "state_noise_std": float(scene.sensor_noise.state_noise_std),
        "table_texture": texture.family if texture is not None else "none",
    }
