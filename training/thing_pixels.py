#!/usr/bin/python3
"""Where the thing pixels of held-out scenes go: the share of them whose label in the
runtime's semantic segmentation (`umgclip segment` over the 48 thing tags and 5 stuff
names, no threshold) is the exact tag, the right colour with another shape, the right shape
with another colour, another thing, or a stuff name; and the share of stuff pixels labelled
right.

  thing_pixels.py --umgclip build/tools/umgclip --model models/umgclip-tiny [--count 40]
      [--seed 5] [--dense-mode naclip]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenes  # noqa: E402


def thing_pixel_kind(label, thing):
    if label not in scenes.THING_TAGS:
        return "stuff"
    colour, shape = label.split()
    if (colour, shape) == (thing.colour, thing.shape):
        return "exact"
    if colour == thing.colour:
        return "same colour"
    return "same shape" if shape == thing.shape else "other thing"


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--umgclip", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--dense-mode", default="naclip")
    args = parser.parse_args()

    labels = scenes.THING_TAGS + scenes.STUFF
    counts = dict.fromkeys(["exact", "same colour", "same shape", "other thing", "stuff"], 0)
    stuff_right = stuff_total = 0
    with tempfile.TemporaryDirectory() as tmp:
        png, npy = os.path.join(tmp, "scene.png"), os.path.join(tmp, "classes.npy")
        for index in range(args.count):
            scene = scenes.generate("heldout", args.seed, index)
            scenes.write_png(png, scene.image)
            subprocess.check_call([args.umgclip, "segment", args.model, png, "--labels",
                                   ",".join(labels), "--dense-mode", args.dense_mode, "--out",
                                   npy, "--device", "cpu"], stdout=subprocess.DEVNULL)
            classes = np.load(npy).astype(np.int64)  # no threshold: every pixel has a label
            assert (classes >= 0).all()
            for thing in scene.things:
                for label_id in classes[thing.mask]:
                    counts[thing_pixel_kind(labels[label_id], thing)] += 1
            for stuff in scene.stuff:
                stuff_right += int((classes[stuff.mask] == labels.index(stuff.name)).sum())
                stuff_total += int(stuff.mask.sum())
    total = sum(counts.values())
    result = {"model": args.model, "scenes": args.count, "thing_pixels": total}
    result.update({k: round(v / total, 3) for k, v in counts.items()})
    result["stuff_pixels_right"] = round(stuff_right / stuff_total, 3)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
