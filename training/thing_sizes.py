#!/usr/bin/python3
"""Region tags by thing size: each thing's true box through `umgclip tag` (RoI-Align on the
dense map, ranked among the 48 colour-shape tags, as umgcliptag does), scored on the whole
tag, the colour word and the shape word, by quarter of the things' visible area.

  thing_sizes.py --umgclip build/tools/umgclip --model models/umgclip-tiny
      [--split heldout|train] [--count 200] [--seed 0]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe import scenes  # noqa: E402


def tagged_things(umgclip, model, data, directory):
    """(visible pixels, tag right, colour right, shape right) of every thing."""
    labels = ",".join(data["thing_tags"])
    rows = []
    for scene in data["scenes"]:
        boxes = ";".join(",".join(str(v) for v in t["box"]) for t in scene["things"])
        result = subprocess.run([umgclip, "tag", model, os.path.join(directory, scene["file"]),
                                 "--boxes", boxes, "--labels", labels, "--top-k", "1",
                                 "--device", "cpu"], capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit("umgclip tag failed on %s: %s" % (scene["file"], result.stderr.strip()))
        for thing, region in zip(scene["things"], json.loads(result.stdout)["regions"]):
            best = region["tags"][0]["label"].split()
            rows.append((sum(thing["mask_rle"][1::2]), best == [thing["colour"], thing["shape"]],
                         best[0] == thing["colour"], best[-1] == thing["shape"]))
    return sorted(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--umgclip", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--split", choices=["heldout", "train"], default="heldout")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        data = scenes(args.split, args.count, args.seed, directory)
        rows = tagged_things(args.umgclip, args.model, data, directory)
    quarters = []
    for q in range(4):
        part = rows[q * len(rows) // 4:(q + 1) * len(rows) // 4]
        if not part:
            continue
        quarter = {"pixels": [part[0][0], part[-1][0]], "things": len(part)}
        for i, key in enumerate(["tag", "colour", "shape"], 1):
            quarter[key] = round(float(np.mean([r[i] for r in part])), 4)
        quarters.append(quarter)
        print("visible %4d-%4d px: tag %5.1f %%, colour %5.1f %%, shape %5.1f %% (%d things)"
              % (quarter["pixels"][0], quarter["pixels"][1], 100 * quarter["tag"],
                 100 * quarter["colour"], 100 * quarter["shape"], quarter["things"]))
    print(json.dumps({"split": args.split, "seed": args.seed, "scenes": args.count,
                      "quarters": quarters}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
