"""Write a SceneSpec's appearance and dynamics into a compiled model in place (no recompile).

Every field is written from nominal values captured once after compilation, so a model
that was rebuilt and one that was edited in place end up with identical fields.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from sim2real.contracts.cell import OBJECT_TEXTURE_SIZE, SURFACE_TEXTURE_SIZE, SURFACES
from sim2real.contracts.geometry import look_at_matrix, matrix_to_quat_wxyz
from sim2real.sim.mujoco.scene import MAX_LIGHTS, object_texture
from sim2real.sim.scene_spec import MaterialSpec, SceneSpec
from sim2real.sim.textures import render_texture

_LIGHT_TYPES = {
    "directional": mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
    "spot": mujoco.mjtLightType.mjLIGHT_SPOT,
    "point": mujoco.mjtLightType.mjLIGHT_POINT,
}


@dataclass
class NominalModel:
    """Values of the freshly compiled model that randomization scales."""

    body_mass: np.ndarray
    body_inertia: np.ndarray
    dof_damping: np.ndarray
    actuator_gainprm: np.ndarray
    actuator_biasprm: np.ndarray

    @classmethod
    def capture(cls, model: mujoco.MjModel) -> NominalModel:
        return cls(
            model.body_mass.copy(), model.body_inertia.copy(), model.dof_damping.copy(),
            model.actuator_gainprm.copy(), model.actuator_biasprm.copy(),
        )  # fmt: skip


class SceneApplier:
    """Applies SceneSpecs to one compiled model; remembers texture contents to skip re-uploads."""

    def __init__(self, model: mujoco.MjModel) -> None:
        self.model = model
        self.nominal = NominalModel.capture(model)
        self._texture_cache: dict[int, bytes] = {}
        self.arm_dofs = np.array([model.joint(f"joint{i}").dofadr[0] for i in range(1, 8)])
        self.arm_actuators = np.array([model.actuator(f"act_joint{i}").id for i in range(1, 8)])
        self._texture_ids = {model.texture(i).name: i for i in range(model.ntex)}

    @staticmethod
    def _white(size: int) -> bytes:
        return bytes([255]) * (size * size * 3)

    def apply(self, scene: SceneSpec) -> list[int]:
        """Write ``scene`` into the model; return the ids of textures whose pixels changed."""
        changed: list[int] = []
        for surface in SURFACES:
            material: MaterialSpec = getattr(scene.surfaces, surface)
            changed += self._material(f"mat_{surface}", f"tex_{surface}", material, SURFACE_TEXTURE_SIZE)
        for index, obj in enumerate(scene.objects):
            changed += self._material(f"mat_obj_{obj.name}", object_texture(index), obj.material, OBJECT_TEXTURE_SIZE)
            self._object_physics(obj.name, obj.mass, obj.friction, obj.static)
        self._lights(scene)
        self._cameras(scene)
        self._dynamics(scene)
        return changed

    def _material(self, name: str, texture_name: str, spec: MaterialSpec, size: int) -> list[int]:
        model = self.model
        mat_id = model.material(name).id
        model.mat_rgba[mat_id] = spec.rgba
        model.mat_specular[mat_id] = spec.specular
        model.mat_shininess[mat_id] = spec.shininess
        model.mat_reflectance[mat_id] = spec.reflectance
        if texture_name not in self._texture_ids:
            return []
        tex_id = self._texture_ids[texture_name]
        if spec.texture is None:
            pixels = self._white(size)
        else:
            # A textured material multiplies texture by rgba: keep rgba's colour neutral.
            model.mat_rgba[mat_id, :3] = 1.0
            pixels = render_texture(spec.texture, size).tobytes()
        if self._texture_cache.get(tex_id) == pixels:
            return []
        adr = model.tex_adr[tex_id]
        model.tex_data[adr : adr + len(pixels)] = np.frombuffer(pixels, dtype=np.uint8)
        self._texture_cache[tex_id] = pixels
        return [tex_id]

    def _object_physics(self, name: str, mass: float, friction: float, static: bool) -> None:
        model = self.model
        body_id = model.body(f"obj_{name}").id
        if not static:
            nominal_mass = self.nominal.body_mass[body_id]
            model.body_mass[body_id] = mass
            model.body_inertia[body_id] = self.nominal.body_inertia[body_id] * (mass / nominal_mass)
        start, count = model.body_geomadr[body_id], model.body_geomnum[body_id]
        model.geom_friction[start : start + count, 0] = friction

    def _lights(self, scene: SceneSpec) -> None:
        model = self.model
        if len(scene.lights) > MAX_LIGHTS:
            raise ValueError(f"scene has {len(scene.lights)} lights; the MuJoCo backend supports at most {MAX_LIGHTS}")
        model.light_active[:] = 0
        for i, light in enumerate(scene.lights):
            if light.type not in _LIGHT_TYPES:
                raise ValueError(f"light {i}: unknown type {light.type!r}; known types: {sorted(_LIGHT_TYPES)}")
            model.light_type[i] = _LIGHT_TYPES[light.type]
            model.light_pos[i] = light.pos
            direction = np.asarray(light.direction, float)
            model.light_dir[i] = direction / np.linalg.norm(direction)
            model.light_diffuse[i] = light.diffuse
            model.light_specular[i] = light.specular
            model.light_ambient[i] = light.ambient
            model.light_cutoff[i] = light.cutoff_deg
            model.light_castshadow[i] = light.castshadow
            model.light_active[i] = 1

    def _cameras(self, scene: SceneSpec) -> None:
        model = self.model
        for cam in scene.cameras:
            cam_id = model.camera(cam.name).id
            up = np.array([0.0, 0.0, 1.0]) if cam.mount == "world" else np.array([1.0, 0.0, 0.0])
            rot = look_at_matrix(np.asarray(cam.pos), np.asarray(cam.lookat), cam.roll, up)
            model.cam_pos[cam_id] = cam.pos
            model.cam_quat[cam_id] = matrix_to_quat_wxyz(rot)
            model.cam_fovy[cam_id] = cam.fovy

    def _dynamics(self, scene: SceneSpec) -> None:
        model, nominal, dyn = self.model, self.nominal, scene.dynamics
        model.dof_damping[self.arm_dofs] = nominal.dof_damping[self.arm_dofs] * dyn.joint_damping_scale
        acts = self.arm_actuators
        model.actuator_gainprm[acts, 0] = nominal.actuator_gainprm[acts, 0] * dyn.actuator_gain_scale
        model.actuator_biasprm[acts, 1] = nominal.actuator_biasprm[acts, 1] * dyn.actuator_gain_scale
        # the servo's derivative gain is the joint damping a real controller (and Isaac's drive) sets
        model.actuator_biasprm[acts, 2] = nominal.actuator_biasprm[acts, 2] * dyn.joint_damping_scale
