"""Robot mesh assets: the Franka meshes shipped by gymnasium-robotics, visual meshes
decimated once and cached on disk (rendering cost scales with triangle count)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import mujoco
import numpy as np

PANDA_LINKS = ("link0", "link1", "link2", "link3", "link4", "link5", "link6", "link7", "hand", "finger")


@dataclass(frozen=True)
class MeshData:
    """Triangle mesh: ``vertices`` (V, 3) float64 metres, ``faces`` (F, 3) int32."""

    vertices: np.ndarray
    faces: np.ndarray


@cache
def franka_mesh_dir() -> Path:
    """Folder of the Franka STL meshes inside the installed gymnasium-robotics package."""
    import importlib.util

    spec = importlib.util.find_spec("gymnasium_robotics")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "the Franka meshes come from the 'gymnasium-robotics' package: pip install gymnasium-robotics"
        )
    path = Path(spec.origin).parent / "envs" / "assets" / "kitchen_franka" / "franka_assets" / "meshes"
    if not path.is_dir():
        raise FileNotFoundError(f"Franka meshes not found at {path}; reinstall gymnasium-robotics")
    return path


def cache_dir() -> Path:
    root = os.environ.get("SIM2REAL_CACHE") or Path.home() / ".cache" / "sim2real"
    path = Path(root) / "meshes"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _load_stl(path: Path) -> MeshData:
    spec = mujoco.MjSpec()
    spec.add_mesh(name="m", file=str(path))
    body = spec.worldbody.add_body(name="b")
    body.add_geom(type=mujoco.mjtGeom.mjGEOM_MESH, meshname="m")
    model = spec.compile()
    start, count = model.mesh_vertadr[0], model.mesh_vertnum[0]
    fstart, fcount = model.mesh_faceadr[0], model.mesh_facenum[0]
    # Compiled meshes are re-centred on their centre of mass; undo that so that the
    # vertices stay in the link frame the kinematics refer to.
    pos, quat = model.mesh_pos[0], model.mesh_quat[0]
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, quat)
    verts = model.mesh_vert[start : start + count].astype(np.float64) @ rot.reshape(3, 3).T + pos
    faces = model.mesh_face[fstart : fstart + fcount].astype(np.int32)
    return MeshData(verts, faces)


def _decimated_cache_stem(link: str, source: Path, reduction: float) -> Path:
    """Cache path (no suffix) of ``link``'s mesh decimated by ``reduction``: keyed by the source bytes."""
    digest = hashlib.sha256(source.read_bytes() + f"{reduction:.4f}".encode()).hexdigest()[:16]
    return cache_dir() / f"{link}-{digest}"


@cache
def panda_mesh(link: str, kind: str, reduction: float) -> MeshData:
    """Mesh of a Panda link. ``kind`` is ``visual`` or ``collision``; ``reduction`` in [0, 1)
    is the fraction of visual triangles removed (0 = full mesh). Results are cached on disk."""
    source = franka_mesh_dir() / kind / f"{link}.stl"
    if kind == "collision" or reduction <= 0.0:
        return _load_stl(source)
    cached = _decimated_cache_stem(link, source, reduction).with_suffix(".npz")
    if cached.exists():
        with np.load(cached) as data:
            return MeshData(data["vertices"], data["faces"])
    import fast_simplification

    full = _load_stl(source)
    verts, faces = fast_simplification.simplify(
        full.vertices.astype(np.float32), full.faces, target_reduction=reduction
    )
    mesh = MeshData(verts.astype(np.float64), faces.astype(np.int32))
    with tempfile.NamedTemporaryFile(dir=cached.parent, suffix=".npz", delete=False) as tmp:
        np.savez(tmp, vertices=mesh.vertices, faces=mesh.faces)
    os.replace(tmp.name, cached)
    return mesh


@cache
def panda_mesh_file(link: str, kind: str, reduction: float) -> Path:
    """A mesh file of a Panda link for ``MjSpec.add_mesh(file=...)``: the shipped STL, or the
    decimated visual mesh written once as OBJ beside its cache entry.

    Meshes given as files go through MuJoCo's asset cache, so a process compiles (convex
    hulls, inertia) each Panda mesh once instead of at every model rebuild (~11 ms each)."""
    source = franka_mesh_dir() / kind / f"{link}.stl"
    if kind == "collision" or reduction <= 0.0:
        return source
    path = _decimated_cache_stem(link, source, reduction).with_suffix(".obj")
    if not path.exists():
        mesh = panda_mesh(link, kind, reduction)
        lines = [f"v {x:.9g} {y:.9g} {z:.9g}" for x, y, z in mesh.vertices]
        lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in mesh.faces]
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".obj", delete=False) as tmp:
            tmp.write("\n".join(lines) + "\n")
        os.replace(tmp.name, path)
    return path
