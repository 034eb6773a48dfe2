#!/usr/bin/python3
"""Is shape in a model's region features at all? A linear probe against the text tags.

  probe.py --umgclip build/tools/umgclip --model models/umgclip-tiny [--train 400] [--test 200]

Every thing box of generated scenes goes through `umgclip encode-regions` (RoI-Align on the
dense map, projected into the text space: what region tags are ranked with). Two linear
classifiers, shape (6) and colour (8), are fitted on the things of --train scenes of the
training pairings and measured on the things of --test new scenes of the training pairings
("seen") and of --test scenes of the held-out pairings, whose colour-shape combinations the
probe never saw either. Beside them: the same boxes ranked against the 48 "colour shape" tags
(as umgcliptag does), scored on the shape word and on the colour word alone; and the shape
that colour alone predicts (the commonest shape of each colour in the fitted things), which is
what a probe can learn without seeing shape at all.

When the probe finds shape far better than the tags do, shape is in the features and the text
alignment misses it; when the probe fails too, the vision side does not carry it.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def scenes(split, count, seed, out):
    subprocess.run([sys.executable, os.path.join(HERE, "scenes.py"), "--split", split,
                    "--count", str(count), "--seed", str(seed), "--out", out], check=True,
                   stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "annotations.json")) as f:
        return json.load(f)


def region_features(tool, model, data, out_dir, device):
    """(features [n, dim], shapes [n], colours [n]) over every thing of every scene."""
    features, shapes, colours = [], [], []
    for scene in data["scenes"]:
        if not scene["things"]:
            continue
        boxes = ";".join(",".join(str(v) for v in t["box"]) for t in scene["things"])
        proc = subprocess.run([tool, "encode-regions", model, os.path.join(out_dir, scene["file"]),
                               "--boxes", boxes, "--device", device], capture_output=True,
                              text=True)
        if proc.returncode != 0:
            sys.exit("umgclip encode-regions failed on %s: %s" % (scene["file"], proc.stderr))
        for thing, embedding in zip(scene["things"], json.loads(proc.stdout)["embeddings"]):
            features.append(embedding)
            shapes.append(thing["shape"])
            colours.append(thing["colour"])
    features = np.asarray(features, dtype=np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    return features, shapes, colours


def fit_probe(x, y, classes, steps=500, weight_decay=1e-3):
    """Multinomial logistic regression (full batch Adam); returns a predict function."""
    torch.manual_seed(0)
    index = {c: i for i, c in enumerate(classes)}
    xt = torch.from_numpy(x)
    yt = torch.tensor([index[v] for v in y])
    mean = xt.mean(0, keepdim=True)
    std = xt.std(0, keepdim=True) + 1e-6
    layer = torch.nn.Linear(x.shape[1], len(classes))
    optimiser = torch.optim.Adam(layer.parameters(), lr=0.05, weight_decay=weight_decay)
    for _ in range(steps):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(layer((xt - mean) / std), yt)
        loss.backward()
        optimiser.step()

    def predict(features):
        with torch.no_grad():
            logits = layer((torch.from_numpy(features) - mean) / std)
        return [classes[i] for i in logits.argmax(1).tolist()]
    return predict


def accuracy(predicted, truth):
    return sum(p == t for p, t in zip(predicted, truth)) / max(len(truth), 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--umgclip", required=True, help="the umgclip program")
    parser.add_argument("--model", required=True)
    parser.add_argument("--train", type=int, default=400, help="scenes the probe is fitted on")
    parser.add_argument("--test", type=int, default=200, help="held-out scenes it is scored on")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        fit_dir, seen_dir = os.path.join(tmp, "fit"), os.path.join(tmp, "seen")
        test_dir = os.path.join(tmp, "test")
        fit = scenes("train", args.train, 11, fit_dir)
        seen = scenes("train", args.test, 12, seen_dir)
        test = scenes("heldout", args.test, 0, test_dir)
        x_fit, shape_fit, colour_fit = region_features(args.umgclip, args.model, fit, fit_dir,
                                                       args.device)
        x_seen, shape_seen, colour_seen = region_features(args.umgclip, args.model, seen,
                                                          seen_dir, args.device)
        x_test, shape_test, colour_test = region_features(args.umgclip, args.model, test,
                                                          test_dir, args.device)
        tags = fit["thing_tags"]
        proc = subprocess.run([args.umgclip, "encode-text", args.model, "--normalize",
                               "--device", args.device]
                              + ["a photo of a %s." % t for t in tags],
                              capture_output=True, text=True, check=True)
        text = np.asarray(json.loads(proc.stdout)["embeddings"], dtype=np.float32)

    shapes = sorted(set(shape_fit))
    colours = sorted(set(colour_fit))
    shape_probe = fit_probe(x_fit, shape_fit, shapes)
    colour_probe = fit_probe(x_fit, colour_fit, colours)
    commonest = {}
    for colour in colours:
        of_colour = [s for s, c in zip(shape_fit, colour_fit) if c == colour]
        commonest[colour] = max(sorted(set(of_colour)), key=of_colour.count)
    result = {"things": {"fit": len(shape_fit), "seen": len(shape_seen),
                         "heldout": len(shape_test)},
              "chance_shape": 1.0 / len(shapes), "chance_colour": 1.0 / len(colours)}
    for name, x, shape, colour in (("seen", x_seen, shape_seen, colour_seen),
                                   ("heldout", x_test, shape_test, colour_test)):
        best = [tags[i] for i in (x @ text.T).argmax(1)]
        result[name] = {
            "probe_shape": accuracy(shape_probe(x), shape),
            "probe_colour": accuracy(colour_probe(x), colour),
            "tags_shape": accuracy([b.split()[1] for b in best], shape),
            "tags_colour": accuracy([b.split()[0] for b in best], colour),
            "shape_from_colour": accuracy([commonest[c] for c in colour], shape),
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
