#!/usr/bin/python3
"""Where the thing pixels of held-out scenes go: the share of them whose segmentation label
(the runtime's dense map through `umgclip encode-dense`, cosine with every label times the
logit scale, upsampled bilinearly, argmax over the 48 thing tags and 5 stuff names) is the
exact tag, the right colour with another shape, the right shape with another colour,
another thing, or a stuff name; and the share of stuff pixels labelled right.

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
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenes  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--umgclip", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--dense-mode", default="naclip")
    args = parser.parse_args()

    tags = [scenes.thing_tag(c, s) for c in scenes.COLOUR_NAMES for s in scenes.SHAPES]
    labels = tags + scenes.STUFF
    tool = [args.umgclip]
    texts = json.loads(subprocess.check_output(
        tool + ["encode-text", args.model, "--normalize", "--device", "cpu"]
        + ["a photo of a %s." % label for label in labels]))["embeddings"]
    scale = json.loads(subprocess.check_output(tool + ["info", args.model]))["logit_scale"]
    label_embeddings = torch.tensor(texts)
    counts = dict.fromkeys(["exact", "same colour", "same shape", "other thing", "stuff"], 0)
    stuff_right = stuff_total = 0
    with tempfile.TemporaryDirectory() as tmp:
        png, npy = os.path.join(tmp, "scene.png"), os.path.join(tmp, "dense.npy")
        for index in range(args.count):
            scene = scenes.generate("heldout", args.seed, index)
            scenes.write_png(png, scene.image)
            subprocess.check_call(tool + ["encode-dense", args.model, png, "--out", npy,
                                          "--dense-mode", args.dense_mode, "--device", "cpu"],
                                  stdout=subprocess.DEVNULL)
            cells = F.normalize(torch.from_numpy(np.load(npy)), dim=-1)
            logits = scale * torch.einsum("hwe,ce->chw", cells, label_embeddings)[None]
            size = scene.image.shape[:2]
            pred = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            pred = pred[0].argmax(0).numpy()
            for thing in scene.things:
                for label_id in pred[thing.mask]:
                    if label_id >= len(tags):
                        counts["stuff"] += 1
                        continue
                    colour, shape = labels[label_id].split()
                    key = ("exact" if (colour, shape) == (thing.colour, thing.shape)
                           else "same colour" if colour == thing.colour
                           else "same shape" if shape == thing.shape else "other thing")
                    counts[key] += 1
            for stuff in scene.stuff:
                stuff_right += int((pred[stuff.mask] == labels.index(stuff.name)).sum())
                stuff_total += int(stuff.mask.sum())
    total = sum(counts.values())
    result = {"model": args.model, "scenes": args.count, "thing_pixels": total}
    result.update({k: round(v / total, 3) for k, v in counts.items()})
    result["stuff_pixels_right"] = round(stuff_right / stuff_total, 3)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
