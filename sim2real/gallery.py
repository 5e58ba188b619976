"""Contact sheets of sampled scenes, so a person can see what a randomization preset does."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sim2real.randomizers import SPLITS, load_preset, preset_names, sample_scene
from sim2real.randomizers.sensor_noise import SensorNoise
from sim2real.sim.backend import make_backend
from sim2real.sim.tasks import TASKS


def render_gallery(
    tasks: list[str], preset: str, split: str, count: int, seed: int, cameras: tuple[str, ...], columns: int
) -> Image.Image:
    """A grid of ``count`` scenes (cycling through ``tasks``); each tile shows the cameras side by side
    with sensor noise applied, captioned with the seed and instruction."""
    config = load_preset(preset)
    backend = make_backend("mujoco")
    tiles = []
    try:
        for index in range(count):
            task = tasks[index % len(tasks)]
            scene = sample_scene(task, seed + index, config, split)
            backend.reset(scene)
            noise = SensorNoise(scene.sensor_noise)
            images = backend.images()
            tile = np.concatenate([noise.image(images[c]) for c in cameras], axis=1)
            tiles.append((tile, f"{seed + index}: {scene.instruction}"))
    finally:
        backend.close()
    return _sheet(tiles, columns, f"preset={preset} split={split}")


def _sheet(tiles: list[tuple[np.ndarray, str]], columns: int, title: str) -> Image.Image:
    scale = 2
    height, width = tiles[0][0].shape[:2]
    caption, header = 14, 20
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * width * scale, header + rows * (height * scale + caption)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 4), title, fill="black")
    for i, (tile, text) in enumerate(tiles):
        x, y = (i % columns) * width * scale, header + (i // columns) * (height * scale + caption)
        sheet.paste(Image.fromarray(tile).resize((width * scale, height * scale), Image.NEAREST), (x, y))
        draw.text((x + 2, y + height * scale), text[: width * scale // 6], fill="black")
    return sheet


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sim2real gallery", description=__doc__)
    parser.add_argument("--preset", default="default", choices=preset_names())
    parser.add_argument("--split", default="train", choices=SPLITS)
    parser.add_argument("--task", action="append", choices=TASKS.names(), help="repeatable; default: all tasks")
    parser.add_argument("-n", "--count", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--columns", type=int, default=3)
    parser.add_argument("--cameras", default="front,wrist")
    parser.add_argument("-o", "--output", type=Path, default=Path("gallery.png"))
    args = parser.parse_args(argv)
    sheet = render_gallery(args.task or TASKS.names(), args.preset, args.split, args.count, args.seed,
                           tuple(args.cameras.split(",")), args.columns)  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.output)
    print(f"wrote {args.output} ({args.count} scenes, preset={args.preset}, split={args.split})")
