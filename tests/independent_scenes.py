#!/usr/bin/python3
"""Scenes drawn independently of training/: a check that a model learnt colour and shape
words rather than the look of its own training images.

  independent_scenes.py --count 200 --seed 0 --out DIR [--pairs heldout|all] [--size 64]

Nothing here comes from training/scenes.py. Shapes are drawn by PIL's ImageDraw as polygons
and ellipses at four times the size and reduced with a box filter, so their edges are
anti-aliased, unlike the training scenes. Backgrounds are none of the five textured stuff
classes: a plain colour, a linear gradient between two colours, or smoothed noise. Colours
are drawn in HSV around a hue of their own for every word.

DIR gets PNGs and an annotations.json in the layout umgclip-eval reads: per scene a
caption, the things with tag, box and mask (RLE over the raster order, false first), and no
stuff: background pixels belong to no segment and umgclip-eval does not score them (void,
as in COCO panoptic). thing_tags lists the 48 colour-shape tags and stuff_names the five
stuff names, so a model ranks labels exactly as it does on the training generator's scenes.

--pairs heldout (the default) uses only the 12 colour-shape pairings that the training
split never shows: (colour index + shape index) % 4 == 0, in the word orders below.
"""
import argparse
import colorsys
import json
import math
import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

COLOUR_WORDS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
SHAPE_WORDS = ["circle", "square", "triangle", "cross", "ring", "star"]
STUFF_WORDS = ["sky", "grass", "water", "sand", "wall"]
SUPERSAMPLE = 4

# (hue in degrees, saturation, value) ranges per colour word; white and black by value
COLOUR_HSV = {
    "red": ((352, 368), (0.75, 0.95), (0.75, 0.95)),
    "green": ((110, 135), (0.75, 0.95), (0.60, 0.85)),
    "blue": ((218, 235), (0.80, 0.95), (0.80, 0.95)),
    "yellow": ((52, 58), (0.85, 1.00), (0.90, 1.00)),
    "purple": ((275, 290), (0.65, 0.85), (0.60, 0.80)),
    "orange": ((26, 32), (0.90, 1.00), (0.95, 1.00)),
    "white": ((0, 360), (0.00, 0.04), (0.94, 1.00)),
    "black": ((0, 360), (0.00, 0.15), (0.03, 0.10)),
}


def held_out(colour, shape):
    return (COLOUR_WORDS.index(colour) + SHAPE_WORDS.index(shape)) % 4 == 0


def pairings(which):
    every = [(c, s) for c in COLOUR_WORDS for s in SHAPE_WORDS]
    return every if which == "all" else [p for p in every if held_out(*p)]


def colour_rgb(word, rng):
    (h0, h1), (s0, s1), (v0, v1) = COLOUR_HSV[word]
    rgb = colorsys.hsv_to_rgb((rng.uniform(h0, h1) % 360) / 360.0, rng.uniform(s0, s1),
                              rng.uniform(v0, v1))
    return tuple(int(round(255 * c)) for c in rgb)


def background(rng, size):
    """uint8 [size, size, 3]: plain, gradient or noise, in colours that no thing word uses
    at full strength (muted, mid to light)."""
    def muted():
        rgb = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.0, 0.3), rng.uniform(0.45, 0.85))
        return np.array(rgb) * 255.0

    kind = ["plain", "gradient", "noise"][int(rng.integers(3))]
    if kind == "plain":
        image = np.broadcast_to(muted(), (size, size, 3)).copy()
    elif kind == "gradient":
        a, b = muted(), muted()
        angle = rng.uniform(0, 2 * math.pi)
        ys, xs = np.mgrid[0:size, 0:size] / (size - 1.0)
        t = (xs - 0.5) * math.cos(angle) + (ys - 0.5) * math.sin(angle)
        t = ((t - t.min()) / max(t.max() - t.min(), 1e-6))[..., None]
        image = a * (1 - t) + b * t
    else:
        base = muted()
        coarse = Image.fromarray(rng.integers(0, 256, (size // 8, size // 8), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((size, size), Image.BICUBIC), dtype=np.float64)
        image = base + (smooth[..., None] - 128.0) * rng.uniform(0.15, 0.35)
    return kind, np.clip(image, 0, 255).astype(np.uint8)


def _rotated(points, cx, cy, angle):
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in points]


def draw_shape(draw, shape, cx, cy, r, angle):
    """Draws shape (fill 255) on a mode-L ImageDraw at supersampled coordinates."""
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        inner = r * 0.5
        draw.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=0)
    elif shape == "square":
        h = r * 0.8
        draw.polygon(_rotated([(-h, -h), (h, -h), (h, h), (-h, h)], cx, cy, angle), fill=255)
    elif shape == "triangle":
        corners = [(r * math.cos(a), r * math.sin(a))
                   for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
        draw.polygon(_rotated(corners, cx, cy, angle), fill=255)
    elif shape == "cross":
        w = r * 0.32
        outline = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r),
                   (-w, w), (-r, w), (-r, -w), (-w, -w)]
        draw.polygon(_rotated(outline, cx, cy, angle), fill=255)
    elif shape == "star":
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.42
            a = -math.pi / 2 + k * math.pi / 5
            points.append((radius * math.cos(a), radius * math.sin(a)))
        draw.polygon(_rotated(points, cx, cy, angle), fill=255)
    else:
        raise ValueError("unknown shape %r" % shape)


def shape_coverage(shape, cx, cy, r, angle, size):
    """float [size, size] in [0, 1]: how much of each output pixel the shape covers."""
    big = Image.new("L", (size * SUPERSAMPLE, size * SUPERSAMPLE), 0)
    draw_shape(ImageDraw.Draw(big), shape, cx * SUPERSAMPLE, cy * SUPERSAMPLE,
               r * SUPERSAMPLE, angle)
    small = big.resize((size, size), Image.BOX)
    return np.asarray(small, dtype=np.float64) / 255.0


def box_of(mask):
    rows = np.nonzero(mask.any(axis=1))[0]
    cols = np.nonzero(mask.any(axis=0))[0]
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


def rle(mask):
    flat = mask.reshape(-1)
    runs, current, length = [], False, 0
    for value in flat:
        if bool(value) == current:
            length += 1
        else:
            runs.append(length)
            current, length = not current, 1
    runs.append(length)
    return runs


def article(word):
    return "an" if word[0] in "aeiou" else "a"


def make_scene(index, seed, which, size):
    rng = np.random.default_rng([seed, 2027, index])
    kind, image = background(rng, size)
    image = image.astype(np.float64)
    choices = pairings(which)
    count = int(rng.choice([1, 1, 2, 3]))
    order = rng.permutation(len(choices))[:count]
    owner = np.full((size, size), -1)
    placed = []
    for slot, pick in enumerate(order):
        colour, shape = choices[pick]
        # one thing alone is large, as a user's test picture would be; several share room
        r = rng.uniform(0.22, 0.36) * size if count == 1 else rng.uniform(0.11, 0.22) * size
        for _attempt in range(20):
            cx, cy = rng.uniform(r, size - r, 2)
            coverage = shape_coverage(shape, cx, cy, r, rng.uniform(0, 2 * math.pi), size)
            mask = coverage >= 0.5
            # things in these scenes do not overlap: each is whole
            if mask.sum() >= 16 and not (mask & (owner >= 0)).any():
                break
        else:
            continue
        rgb = np.array(colour_rgb(colour, rng), dtype=np.float64)
        image = image * (1 - coverage[..., None]) + rgb * coverage[..., None]
        owner[mask] = slot
        placed.append((colour, shape, mask))
    noise = rng.normal(0, 2.0, image.shape)
    pixels = np.clip(np.round(image + noise), 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        pixels = np.asarray(Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(0.6)))
    phrases = ["%s %s %s" % (article(c), c, s) for c, s, _ in placed]
    caption = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    things = [{"colour": c, "shape": s, "phrase": p, "tag": "%s %s" % (c, s), "box": box_of(m),
               "mask_rle": rle(m)} for (c, s, m), p in zip(placed, phrases)]
    return pixels, {"caption": caption, "background": kind, "things": things, "stuff": []}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pairs", choices=["heldout", "all"], default="heldout")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.count < 1 or args.size < 32:
        parser.error("--count must be >= 1 and --size >= 32")
    os.makedirs(args.out, exist_ok=True)
    records = []
    for index in range(args.count):
        pixels, record = make_scene(index, args.seed, args.pairs, args.size)
        name = "independent-%06d.png" % index
        Image.fromarray(pixels).save(os.path.join(args.out, name))
        record["file"] = name
        records.append(record)
    with open(os.path.join(args.out, "annotations.json"), "w") as f:
        json.dump({"generator": "tests/independent_scenes.py", "pairs": args.pairs,
                   "seed": args.seed, "size": args.size,
                   "thing_tags": ["%s %s" % (c, s) for c in COLOUR_WORDS for s in SHAPE_WORDS],
                   "stuff_names": STUFF_WORDS, "scenes": records}, f)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
