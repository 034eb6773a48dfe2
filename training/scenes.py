#!/usr/bin/python3
# Seeded scene generator for multi-granularity training: textured stuff backgrounds and
# coloured thing shapes, annotated as an image caption, region boxes with phrases and masks.
"""Generated scenes with annotations at three granularities.

  scene = scenes.generate("train", seed=0, index=12)
  scene.image      uint8 [64, 64, 3]
  scene.caption    "a red circle and a blue ring on sand"
  scene.things     [Thing(colour, shape, phrase, box=(x, y, w, h), mask)]   occlusion-aware
  scene.stuff      [Stuff(name, mask)]                                      what things leave

Held-out split rule: colour number c (index in COLOURS) and shape number s (index in
SHAPES) form a held-out pair when (c + s) % 4 == 0. That is 12 of the 48 pairs, every
colour with one or two held-out shapes and every shape with two held-out colours, so all
words are seen in training but these pairings never are. "train" scenes draw things from
the other 36 pairs only; "heldout" scenes draw them from the 12 held-out pairs only.
Stuff classes are shared by both splits.

Command line (writes PNGs and an annotations.json with boxes and masks as RLE rows, plus the
label vocabulary an evaluation ranks among: thing_tags, all 48 colour-shape tags, and
stuff_names):
  scenes.py --split heldout --count 100 --seed 0 --out DIR
"""

import argparse
import json
import os
import struct
import sys
import zlib
from collections import namedtuple

import numpy as np

IMAGE_SIZE = 64

COLOURS = {
    "red": (0.86, 0.14, 0.12),
    "green": (0.10, 0.78, 0.25),
    "blue": (0.12, 0.25, 0.90),
    "yellow": (0.95, 0.88, 0.10),
    "purple": (0.55, 0.18, 0.75),
    "orange": (0.98, 0.55, 0.08),
    "white": (0.96, 0.96, 0.96),
    "black": (0.06, 0.06, 0.07),
}
COLOUR_NAMES = list(COLOURS)
SHAPES = ["circle", "square", "triangle", "cross", "ring", "star"]
STUFF = ["sky", "grass", "water", "sand", "wall"]
# Two-stuff scenes put one of these above the other, like a horizon.
UPPER_STUFF = ["sky", "wall"]
LOWER_STUFF = ["grass", "water", "sand"]
SPLITS = {"train": 0, "heldout": 1}

MIN_RADIUS, MAX_RADIUS = 6.0, 16.0
MAX_THINGS = 3
# A new thing may hide at most this much of what is already visible of an earlier one.
MAX_OCCLUSION = 0.5

Thing = namedtuple("Thing", "colour shape phrase box mask")
Stuff = namedtuple("Stuff", "name mask")
Scene = namedtuple("Scene", "image caption things stuff")


def is_held_out(colour, shape):
    return (COLOUR_NAMES.index(colour) + SHAPES.index(shape)) % 4 == 0


def pairs(split):
    """(colour, shape) pairs that things of a split are drawn from."""
    if split not in SPLITS:
        raise ValueError("unknown split %r (expected one of %s)" % (split, ", ".join(SPLITS)))
    want_held_out = split == "heldout"
    return [(c, s) for c in COLOUR_NAMES for s in SHAPES if is_held_out(c, s) == want_held_out]


def thing_tag(colour, shape):
    return "%s %s" % (colour, shape)


# every colour-shape tag, held out or not: the thing vocabulary an evaluation ranks among
THING_TAGS = [thing_tag(c, s) for c in COLOUR_NAMES for s in SHAPES]


def all_words():
    """Every word a caption, phrase or tag can contain (the vocabulary's whole words)."""
    words = ["a", "photo", "of", "on", "and"] + COLOUR_NAMES + SHAPES + STUFF
    return list(dict.fromkeys(words))


# ---- textures ------------------------------------------------------------------------

def _pixel_grid(size):
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    return ys + 0.5, xs + 0.5


def _jitter(rng, rgb, amount=0.05):
    return np.clip(np.asarray(rgb) + rng.uniform(-amount, amount, 3), 0.0, 1.0)


def _texture(name, rng, size):
    """float RGB [size, size, 3] in [0, 1] filling the whole frame with one stuff texture."""
    ys, xs = _pixel_grid(size)
    noise = rng.normal(0.0, 1.0, (size, size, 1))
    if name == "sky":
        top, bottom = _jitter(rng, (0.40, 0.65, 0.95)), _jitter(rng, (0.72, 0.86, 1.0))
        t = (ys / size)[..., None]
        image = top * (1 - t) + bottom * t
        for _ in range(rng.integers(0, 3)):
            cy, cx = rng.uniform(0, size, 2)
            spread = rng.uniform(3, 8)
            cloud = np.exp(-(((ys - cy) / (spread * 0.6)) ** 2 + ((xs - cx) / spread) ** 2))
            image = image * (1 - 0.8 * cloud[..., None]) + 0.97 * 0.8 * cloud[..., None]
        return image + 0.01 * noise
    if name == "grass":
        base = _jitter(rng, (0.22, 0.50, 0.14))
        blades = rng.normal(0.0, 1.0, (1, size, 1)) * 0.06
        return base + blades + 0.05 * noise * np.array([0.6, 1.0, 0.5])
    if name == "water":
        base = _jitter(rng, (0.08, 0.28, 0.52))
        phase = rng.uniform(0, 2 * np.pi)
        waves = np.sin(ys * rng.uniform(0.8, 1.4) + 1.5 * np.sin(xs * 0.25 + phase))
        return base + 0.07 * waves[..., None] * np.array([0.5, 0.8, 1.0]) + 0.015 * noise
    if name == "sand":
        base = _jitter(rng, (0.84, 0.74, 0.50))
        speckle = (rng.random((size, size, 1)) < 0.08) * -0.12
        return base + 0.04 * noise + speckle
    if name == "wall":
        base = _jitter(rng, (0.62, 0.58, 0.56))
        row_height = int(rng.integers(6, 10))
        offset = int(rng.integers(0, row_height))
        row = ((ys + offset) // row_height).astype(int)
        brick_x = (xs + (row % 2) * row_height) % (2 * row_height)
        mortar = (((ys + offset) % row_height) < 1.0) | (brick_x < 1.0)
        shade = rng.normal(0.0, 0.04, row.max() + 1)[row]
        image = base + shade[..., None] + 0.02 * noise
        image[mortar] = 0.85 * image[mortar] + 0.15 * 0.9
        return image
    raise ValueError("unknown stuff %r" % name)


# ---- shapes ---------------------------------------------------------------------------

def _shape_mask(shape, cy, cx, radius, angle, size):
    ys, xs = _pixel_grid(size)
    dy, dx = ys - cy, xs - cx
    # coordinates in the shape's own rotated frame
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    rho = np.hypot(u, v)
    if shape == "circle":
        return rho <= radius
    if shape == "square":
        half = radius * 0.82
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    if shape == "triangle":
        # equilateral, circumradius = radius: inside all three edge half-planes
        inside = np.ones_like(u, dtype=bool)
        for k in range(3):
            theta = angle + np.pi / 2 + k * 2 * np.pi / 3
            inside &= (dx * np.cos(theta) + dy * np.sin(theta)) <= radius * 0.5
        return inside
    if shape == "cross":
        arm = radius / 3.0
        return (((np.abs(u) <= radius) & (np.abs(v) <= arm))
                | ((np.abs(v) <= radius) & (np.abs(u) <= arm)))
    if shape == "ring":
        return (rho <= radius) & (rho >= radius * 0.55)
    if shape == "star":
        phi = np.arctan2(v, u)
        # five points: the edge radius swings between 0.45 and 1.0 of the radius
        edge = radius * (0.45 + 0.55 * np.abs(np.cos(2.5 * phi)) ** 3)
        return rho <= edge
    raise ValueError("unknown shape %r" % shape)


def _paint_thing(image, mask, colour, rng, cy, cx, radius):
    ys, xs = _pixel_grid(image.shape[0])
    # soft top-left lighting so things are not flat stickers
    light = 1.0 + 0.12 * ((cy - ys) + (cx - xs)) / max(radius, 1.0) / 2.0
    rgb = _jitter(rng, COLOURS[colour], 0.04)
    painted = rgb * np.clip(light, 0.8, 1.15)[..., None] + rng.normal(0.0, 0.015, image.shape)
    image[mask] = painted[mask]


# ---- scenes ---------------------------------------------------------------------------

def _background(rng, size):
    ys, xs = _pixel_grid(size)
    if rng.random() < 0.35:
        name = STUFF[int(rng.integers(len(STUFF)))]
        return _texture(name, rng, size), [(name, np.ones((size, size), dtype=bool))]
    upper = UPPER_STUFF[int(rng.integers(len(UPPER_STUFF)))]
    lower = LOWER_STUFF[int(rng.integers(len(LOWER_STUFF)))]
    horizon = rng.uniform(0.3, 0.7) * size
    wobble = rng.uniform(0, 3) * np.sin(xs * rng.uniform(0.05, 0.3) + rng.uniform(0, 2 * np.pi))
    upper_mask = ys < horizon + wobble
    image = np.where(upper_mask[..., None], _texture(upper, rng, size), _texture(lower, rng, size))
    return image, [(upper, upper_mask), (lower, ~upper_mask)]


def _box(mask):
    rows = np.nonzero(mask.any(axis=1))[0]
    cols = np.nonzero(mask.any(axis=0))[0]
    return (int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))


def _visible_parts(masks):
    """What each mask keeps once the later (drawn on top) masks cover it."""
    covered = np.zeros_like(masks[0]) if masks else None
    parts = []
    for mask in reversed(masks):
        parts.append(mask & ~covered)
        covered = covered | mask
    return parts[::-1]


def _caption(rng, phrases, stuff_names):
    if len(phrases) == 1:
        things = phrases[0]
    else:
        things = ", ".join(phrases[:-1]) + " and " + phrases[-1]
    caption = "%s on %s" % (things, " and ".join(stuff_names))
    if rng.random() < 0.3:
        caption = "a photo of " + caption
    return caption


def generate(split, seed, index, size=IMAGE_SIZE):
    """One scene, a pure function of (split, seed, index)."""
    rng = np.random.default_rng([seed, SPLITS[split], index])
    allowed = pairs(split)
    image, stuff_layers = _background(rng, size)
    n_things = int(rng.integers(1, MAX_THINGS + 1))
    placed = []  # (colour, shape, full mask), in drawing order
    chosen = [allowed[i] for i in rng.permutation(len(allowed))[:n_things]]
    for colour, shape in chosen:
        for _attempt in range(10):
            radius = rng.uniform(MIN_RADIUS, MAX_RADIUS) * (size / IMAGE_SIZE)
            cy, cx = rng.uniform(radius * 0.7, size - radius * 0.7, 2)
            mask = _shape_mask(shape, cy, cx, radius, rng.uniform(0, 2 * np.pi), size)
            if mask.sum() < 12:
                continue
            visible_before = _visible_parts([m for _, _, m in placed])
            if all((v & mask).sum() <= MAX_OCCLUSION * v.sum() for v in visible_before):
                _paint_thing(image, mask, colour, rng, cy, cx, radius)
                placed.append((colour, shape, mask))
                break
    visible = _visible_parts([m for _, _, m in placed])
    things = [Thing(colour, shape, "a " + thing_tag(colour, shape), _box(part), part)
              for (colour, shape, _), part in zip(placed, visible)]
    covered = np.any([m for _, _, m in placed] + [np.zeros((size, size), dtype=bool)], axis=0)
    stuff = [Stuff(name, m & ~covered) for name, m in stuff_layers if (m & ~covered).any()]
    caption = _caption(rng, [t.phrase for t in things], [name for name, _ in stuff_layers])
    pixels = np.clip(np.round(np.clip(image, 0.0, 1.0) * 255.0), 0, 255).astype(np.uint8)
    return Scene(pixels, caption, things, stuff)


# ---- files ----------------------------------------------------------------------------

def write_png(path, rgb):
    """8-bit RGB PNG with the standard library only."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(height))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def _mask_rle(mask):
    """Runs of alternating false/true over the raster order, starting with false."""
    flat = mask.reshape(-1).astype(np.int8)
    changes = np.nonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))[0]
    return np.diff(np.concatenate([[0], changes])).tolist()


def scene_record(scene, file_name):
    return {
        "file": file_name,
        "caption": scene.caption,
        "things": [{"colour": t.colour, "shape": t.shape, "phrase": t.phrase,
                    "tag": thing_tag(t.colour, t.shape), "box": list(t.box),
                    "mask_rle": _mask_rle(t.mask)} for t in scene.things],
        "stuff": [{"name": s.name, "mask_rle": _mask_rle(s.mask)} for s in scene.stuff],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=sorted(SPLITS), default="heldout")
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first", type=int, default=0, help="index of the first scene")
    parser.add_argument("--size", type=int, default=IMAGE_SIZE)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    records = []
    for index in range(args.first, args.first + args.count):
        scene = generate(args.split, args.seed, index, args.size)
        name = "%s-%06d.png" % (args.split, index)
        write_png(os.path.join(args.out, name), scene.image)
        records.append(scene_record(scene, name))
    with open(os.path.join(args.out, "annotations.json"), "w") as f:
        json.dump({"split": args.split, "seed": args.seed, "size": args.size,
                   "held_out_rule": "(COLOURS index + SHAPES index) % 4 == 0",
                   "thing_tags": THING_TAGS,
                   "stuff_names": STUFF, "scenes": records}, f)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
