"""Closed-form rotation helpers agree with scipy's reference implementation."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from sim2real.contracts.geometry import look_at_matrix, matrix_to_rpy, rotation_error, rpy_to_matrix


def test_matrix_to_rpy_matches_scipy_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        rot = Rotation.random(random_state=rng)
        rpy = matrix_to_rpy(rot.as_matrix())
        assert np.allclose(rpy, rot.as_euler("xyz"), atol=1e-7)
        assert np.allclose(rpy_to_matrix(rpy), rot.as_matrix(), atol=1e-9)


def test_rotation_error_matches_scipy_including_small_and_near_pi_angles() -> None:
    rng = np.random.default_rng(1)
    for _ in range(500):
        a, b = Rotation.random(random_state=rng), Rotation.random(random_state=rng)
        assert np.allclose(rotation_error(a.as_matrix(), b.as_matrix()), (a * b.inv()).as_rotvec(), atol=1e-6)
    small = Rotation.from_rotvec([1e-7, -2e-7, 3e-7])
    assert np.allclose(rotation_error(small.as_matrix(), np.eye(3)), small.as_rotvec(), atol=1e-12)
    near_pi = Rotation.from_rotvec(np.array([0.0, 0.6, 0.8]) * (np.pi - 1e-6))
    assert np.allclose(rotation_error(near_pi.as_matrix(), np.eye(3)), near_pi.as_rotvec(), atol=1e-5)


def test_look_at_points_the_camera_minus_z_at_the_target() -> None:
    rot = look_at_matrix(np.array([1.0, 0.0, 1.0]), np.array([0.0, 0.0, 0.0]), 0.0, np.array([0.0, 0.0, 1.0]))
    forward = -rot[:, 2]
    assert np.allclose(forward, np.array([-1.0, 0.0, -1.0]) / np.sqrt(2))
    assert np.allclose(rot.T @ rot, np.eye(3))
