#!/usr/bin/python3
"""Clips of generated scenes (training/scenes.py) with known content, as PNG frames.

  clips.py event --out DIR --frames 30 --present 10:19 --thing "yellow ring" [--other "blue square"]
                 [--absent 14,15]
      a fixed background with one thing (--other) always there; the thing appears at frame a
      and is gone after frame b, moving as it goes (but missing from the --absent frames).
      DIR/frame-%06d.png and DIR/clip.json (present: [a, b], per-frame boxes or null).
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "training"))
import scenes  # noqa: E402


def event_clip(out, frames, first, last, thing, other, seed, absent=(), size=scenes.IMAGE_SIZE):
    rng = np.random.default_rng([seed, 99])
    background, _ = scenes._background(rng, size)
    colour, shape = thing.split()
    boxes = []
    os.makedirs(out, exist_ok=True)
    if other:
        other_colour, other_shape = other.split()
        radius = 10.0 * size / scenes.IMAGE_SIZE
        mask = scenes._shape_mask(other_shape, size * 0.25, size * 0.25, radius, 0.3, size)
        scenes._paint_thing(background, mask, other_colour, rng, size * 0.25, size * 0.25, radius)
    for f in range(frames):
        image = background.copy()
        box = None
        if first <= f <= last and f not in absent:
            t = (f - first) / max(last - first, 1)
            radius = 13.0 * size / scenes.IMAGE_SIZE
            cy, cx = size * 0.62, size * (0.4 + 0.3 * t)
            mask = scenes._shape_mask(shape, cy, cx, radius, 0.5 * t, size)
            scenes._paint_thing(image, mask, colour, np.random.default_rng([seed, f]), cy, cx,
                                radius)
            box = list(scenes._box(mask))
        boxes.append(box)
        pixels = np.clip(np.round(np.clip(image, 0, 1) * 255), 0, 255).astype(np.uint8)
        scenes.write_png(os.path.join(out, "frame-%06d.png" % f), pixels)
    with open(os.path.join(out, "clip.json"), "w") as f:
        json.dump({"thing": thing, "other": other, "present": [first, last], "boxes": boxes}, f)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="kind", required=True)
    event = sub.add_parser("event")
    event.add_argument("--out", required=True)
    event.add_argument("--frames", type=int, default=30)
    event.add_argument("--present", default="10:19")
    event.add_argument("--thing", default="yellow ring")
    event.add_argument("--other", default="")
    event.add_argument("--seed", type=int, default=0)
    event.add_argument("--absent", default="")
    args = parser.parse_args()
    first, last = (int(x) for x in args.present.split(":"))
    absent = [int(x) for x in args.absent.split(",") if x]
    event_clip(args.out, args.frames, first, last, args.thing, args.other, args.seed, absent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
