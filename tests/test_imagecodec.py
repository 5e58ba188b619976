"""The PNG writer: lossless, readable by Pillow, and compressing rendered frames."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sim2real.datasets.imagecodec import decode_image, encode_image, encode_png


@pytest.mark.parametrize("shape", [(128, 128, 3), (1, 1, 3), (7, 5, 3), (64, 200, 3)])
@pytest.mark.parametrize("level", [0, 1, 3])
def test_png_round_trips_exactly_through_pillow(shape: tuple[int, int, int], level: int) -> None:
    frame = np.random.default_rng(sum(shape) + level).integers(0, 256, shape, dtype=np.uint8)
    data = encode_png(frame, level)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG" and image.mode == "RGB" and image.size == (shape[1], shape[0])
        assert np.array_equal(np.asarray(image), frame)
    assert np.array_equal(decode_image(data, "test"), frame)


def test_png_compresses_smooth_renders_and_rejects_bad_frames() -> None:
    ramp = np.broadcast_to(np.linspace(0, 255, 128, dtype=np.uint8)[None, :, None], (128, 128, 3))
    assert len(encode_image(ramp, "png")) < ramp.nbytes / 20
    with pytest.raises(ValueError, match=r"uint8 \(H, W, 3\)"):
        encode_png(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((4, 4, 3), np.float32))
