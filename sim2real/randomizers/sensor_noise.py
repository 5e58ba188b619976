"""Sensor noise applied to observations (pure numpy/PIL): image noise, blur, JPEG
re-compression, proprio state noise. Both backends share it."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from sim2real.sim.scene_spec import SensorNoiseSpec


class SensorNoise:
    """Corrupts one episode's observations; the noise stream is seeded from the SceneSpec."""

    def __init__(self, spec: SensorNoiseSpec) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 0x5E45]))

    @property
    def active(self) -> bool:
        s = self.spec
        return bool(s.image_noise_std > 0 or s.blur_sigma > 0 or s.jpeg_quality > 0 or s.state_noise_std > 0)

    def image(self, image: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) -> uint8 (H, W, 3)."""
        s = self.spec
        out = image
        if s.blur_sigma > 0:
            out = gaussian_filter(out.astype(np.float32), sigma=(s.blur_sigma, s.blur_sigma, 0))
        if s.image_noise_std > 0:
            noise = self.rng.standard_normal(out.shape, dtype=np.float32)
            noise *= np.float32(s.image_noise_std)
            noise += out
            out = noise
        if out is not image:
            out = np.clip(np.round(out), 0, 255).astype(np.uint8)
        if s.jpeg_quality > 0:
            buffer = io.BytesIO()
            Image.fromarray(out).save(buffer, format="JPEG", quality=int(s.jpeg_quality))
            out = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        return out

    def state(self, state: np.ndarray) -> np.ndarray:
        """float32 (14,) -> float32 (14,), Gaussian noise on every entry."""
        if self.spec.state_noise_std <= 0:
            return state
        return (state + self.rng.normal(0.0, self.spec.state_noise_std, state.shape)).astype(np.float32)
