"""A street-like scene with real Cityscapes labelIds (the data benchmark's input,
``scripts/bench_data.py``), and a Cityscapes train tree of them for ``dataset=cityscapes``."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from segohem.data.drawing import to_uint8

# labelId -> base RGB colour of the synthetic scenes (roughly what the class looks like).
COLOURS = {1: (20, 20, 25), 3: (0, 0, 0), 4: (110, 90, 80), 7: (110, 105, 110),
           8: (165, 155, 150), 9: (140, 120, 125), 11: (150, 130, 115), 12: (170, 165, 150),
           13: (120, 110, 95), 17: (90, 90, 95), 19: (40, 40, 35), 20: (200, 190, 60),
           21: (70, 105, 45), 22: (140, 150, 90), 23: (170, 200, 230), 24: (90, 60, 70),
           26: (60, 70, 120), 33: (130, 30, 40)}


def make_scene(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A street-like uint8 RGB image (h, w, 3) and its uint8 Cityscapes labelIds (h, w): sky,
    buildings, walls, trees, road, sidewalk, poles, signs, cars, people, ego vehicle, border."""
    inst = np.zeros((h, w), np.uint16)  # instance id; 0 = sky
    ids, colours = [23], [np.array(COLOURS[23], np.float32)]

    def new(label: int) -> int:
        ids.append(label)
        jitter = rng.uniform(-25, 25, 3) + rng.uniform(-20, 20)
        colours.append(np.clip(np.array(COLOURS[label], np.float32) + jitter, 0, 255))
        return len(ids) - 1

    def s(v: float) -> int:  # fraction of the width -> px
        return max(1, round(v * w))

    def field(cells: tuple[int, int]) -> np.ndarray:  # smooth random field in ~[-1, 1]
        grid = rng.uniform(-1, 1, cells).astype(np.float32)
        return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)

    horizon, x = int(h * rng.uniform(0.4, 0.5)), 0
    while x < w:  # buildings along the skyline, with windows
        bw = s(rng.uniform(0.05, 0.2))
        cv2.rectangle(inst, (x, int(h * rng.uniform(0.02, 0.3))), (x + bw, horizon), new(11), -1)
        for _ in range(int(rng.integers(0, 12))):
            wx, wy = x + int(rng.uniform(0, bw)), int(h * rng.uniform(0.1, 0.4))
            cv2.rectangle(inst, (wx, wy), (wx + s(0.008), wy + s(0.01)), new(11), -1)
        x += bw
    for _ in range(int(rng.integers(1, 4))):  # walls, fences
        x0 = s(rng.uniform(0, 0.9))
        cv2.rectangle(inst, (x0, horizon - s(rng.uniform(0.01, 0.03))), (
            x0 + s(rng.uniform(0.05, 0.2)), horizon), new(int(rng.choice([12, 13]))), -1)
    for _ in range(int(rng.integers(2, 7))):  # trees
        c = (s(rng.uniform(0, 1)), int(horizon - h * rng.uniform(0.05, 0.3)))
        axes = (s(rng.uniform(0.03, 0.1)), s(rng.uniform(0.03, 0.08)))
        cv2.ellipse(inst, c, axes, float(rng.uniform(0, 180)), 0, 360, new(21), -1)
    cv2.rectangle(inst, (0, horizon), (w, h), new(8), -1)  # sidewalk, terrain, road
    for side in (0, 1):
        x0 = 0 if side == 0 else w - s(0.15)
        cv2.rectangle(inst, (x0, horizon), (x0 + s(rng.uniform(0.05, 0.15)), horizon + s(0.03)),
                      new(22), -1)
    vx = w * rng.uniform(0.4, 0.6)
    road = np.array([[vx - w * 0.05, horizon], [vx + w * 0.05, horizon],
                     [w * rng.uniform(0.85, 1.1), h], [w * rng.uniform(-0.1, 0.15), h]], np.int32)
    cv2.fillPoly(inst, [road], new(7))
    for _ in range(int(rng.integers(0, 3))):
        x0, y0 = s(rng.uniform(0, 0.9)), int(h * rng.uniform(0.55, 0.8))
        cv2.rectangle(inst, (x0, y0), (x0 + s(0.06), y0 + s(0.02)), new(int(rng.choice([4, 9]))),
                      -1)
    for _ in range(int(rng.integers(2, 8))):  # poles with signs / lights
        x0 = s(rng.uniform(0, 1))
        top, bottom = int(h * rng.uniform(0.1, 0.35)), int(h * rng.uniform(0.5, 0.7))
        cv2.rectangle(inst, (x0, top), (x0 + s(rng.uniform(0.002, 0.006)), bottom), new(17), -1)
        if rng.random() < 0.6:
            cv2.rectangle(inst, (x0 - s(0.01), top), (x0 + s(0.012), top + s(0.02)),
                          new(int(rng.choice([19, 20]))), -1)
    for _ in range(int(rng.integers(2, 10))):  # cars, bigger when lower in the image
        y = rng.uniform(0.0, 1.0)
        size, y0, x0 = 0.03 + 0.15 * y, int(horizon + (h - horizon) * 0.6 * y), s(
            rng.uniform(-0.05, 1.0))
        cw, ch, car = s(size), s(size * 0.45), new(26)
        cv2.rectangle(inst, (x0, y0 - ch), (x0 + cw, y0), car, -1)
        cv2.ellipse(inst, (x0 + cw // 2, y0 - ch), (cw // 3, ch // 2), 0, 180, 360, car, -1)
        for wx in (x0 + cw // 5, x0 + 4 * cw // 5):  # wheels: dark, same class
            cv2.circle(inst, (wx, y0), max(1, ch // 4), new(26), -1)
    for _ in range(int(rng.integers(0, 8))):  # people, riders
        y = rng.uniform(0.0, 1.0)
        ph = s(0.02 + 0.1 * y)
        x0, y0 = s(rng.uniform(0, 1)), int(horizon + (h - horizon) * 0.5 * y)
        label = 24 if rng.random() < 0.8 else 33
        cv2.ellipse(inst, (x0, y0 - ph // 2), (max(1, ph // 6), ph // 2), 0, 0, 360, new(label),
                    -1)
        cv2.circle(inst, (x0, y0 - ph - ph // 10), max(1, ph // 10), new(label), -1)
    ego = int(h * rng.uniform(0.03, 0.08))  # ego vehicle, out-of-ROI border
    cv2.ellipse(inst, (w // 2, h + ego), (int(w * 0.7), 2 * ego), 0, 180, 360, new(1), -1)
    border, b = new(3), max(1, h // 200)
    inst[:b], inst[-b:], inst[:, :b], inst[:, -b:] = border, border, border, border

    image = np.stack(colours)[inst] * (1.0 + 0.18 * field((6, 12)) + 0.06 * field((48, 96))
                                       )[..., None]
    image = cv2.GaussianBlur(image, (3, 3), 0)  # soft object edges, like optics
    image += 3.0 * field((h // 8, w // 8))[..., None]  # fine texture
    image += rng.standard_normal(image.shape, dtype=np.float32) * 1.0  # sensor noise
    return to_uint8(image), np.array(ids, np.uint8)[inst]


def write_cityscapes_tree(root: Path, num: int, size: tuple[int, int]) -> str:
    """``num`` scenes (seeds ``[0, i]``) in the Cityscapes train layout under ``root``
    (``leftImg8bit/train/<city>/`` PNGs, ``gtFine/`` labelIds); describes the files."""
    def one(i: int) -> tuple[int, int]:
        city = ("aachen", "bochum", "bremen")[i % 3]
        paths = [root / top / "train" / city / f"{city}_{i:06d}_000019_{kind}.png"
                 for top, kind in (("leftImg8bit", "leftImg8bit"), ("gtFine", "gtFine_labelIds"))]
        for path, array in zip(paths, make_scene(np.random.default_rng([0, i]), *size),
                               strict=True):
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(path)
        return paths[0].stat().st_size, paths[1].stat().st_size

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        image_b, mask_b = np.mean(list(pool.map(one, range(num))), axis=0)
    return (f"{num} synthetic {size[0]}x{size[1]} street scenes, PNG {image_b / 1e6:.2f} "
            f"MB/image + labelIds {mask_b / 1e3:.0f} KB/mask")
