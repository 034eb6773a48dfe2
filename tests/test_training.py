#!/usr/bin/python3
# Short seeded training of the CLIP baseline and the UMG model (training/train.py): the loss
# falls, and the exported directories load and agree with PyTorch in the C runtime.
"""usage: test_training.py UMGCLIP [--device cpu] [--steps 40] [--batch 24] [--keep DIR]

Standard library only here; training runs in /usr/bin/python3 (or $UMGCLIP_TORCH_PYTHON),
and the test exits 77 (skipped) when that interpreter cannot import torch and numpy.
"""

import argparse
import ast
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN_PY = os.path.join(HERE, "..", "training", "train.py")
LOG_SUMMARY_PY = os.path.join(HERE, "..", "training", "log_summary.py")
TORCH_PYTHON = os.environ.get("UMGCLIP_TORCH_PYTHON", "/usr/bin/python3")
DENSE_MODES = ["naclip", "clearclip", "sclip", "maskclip"]
MIN_COSINE = 0.9999
# the loss must drop by at least this share from the first five steps to the last five
MIN_LOSS_DROP = 0.10

failures = []


def check(condition, message):
    print(("ok    " if condition else "FAIL  ") + message, flush=True)
    if not condition:
        failures.append(message)
    return condition


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm > 0 else 0.0


def min_row_cosine(rows_a, rows_b):
    if len(rows_a) != len(rows_b) or not rows_a:
        return -1.0
    return min(cosine(a, b) for a, b in zip(rows_a, rows_b))


def read_npy_f32(path):
    """A little-endian float32 .npy as (shape, flat list), without numpy."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        raise ValueError("%s: not a .npy file" % path)
    major = data[6]
    if major == 1:
        (header_len,) = struct.unpack("<H", data[8:10])
        start = 10
    else:
        (header_len,) = struct.unpack("<I", data[8:12])
        start = 12
    header = ast.literal_eval(data[start:start + header_len].decode("latin1"))
    if header["descr"] != "<f4" or header["fortran_order"]:
        raise ValueError("%s: expected C-order <f4, got %s" % (path, header))
    shape = tuple(header["shape"])
    count = 1
    for dim in shape:
        count *= dim
    body = data[start + header_len:]
    return shape, list(struct.unpack("<%df" % count, body[:4 * count]))


def umgclip(tool, device, *args):
    result = subprocess.run([tool] + list(args) + ["--device", device], capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise RuntimeError("umgclip %s failed (%d): %s" % (" ".join(args), result.returncode,
                                                           result.stderr.strip()))
    return result


def torch_available():
    try:
        result = subprocess.run([TORCH_PYTHON, "-c", "import torch, numpy"], capture_output=True,
                                text=True)
    except OSError as e:
        return False, str(e)
    return result.returncode == 0, result.stderr.strip().splitlines()[-1:] or [""]


def read_log(path):
    with open(path) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    return lines[0], lines[1:]


def check_training(name, out_dir, log_path, steps):
    header, rows = read_log(log_path)
    check(len(rows) == steps, "%s: %d loss records for %d steps" % (name, len(rows), steps))
    losses = [r["loss"] for r in rows]
    check(all(math.isfinite(x) for x in losses), "%s: every logged loss is finite" % name)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    check(last <= (1 - MIN_LOSS_DROP) * first,
          "%s: loss falls from %.4f (first 5 steps) to %.4f (last 5)" % (name, first, last))
    if name == "umg":
        stages = [r["stage"] for r in rows]
        check(1 in stages and 2 in stages and stages == sorted(stages),
              "umg: stage 1 (all weights) then stage 2 (dense-head adapters)")
        check(all("region" in r and "pixel" in r for r in rows),
              "umg: region and pixel losses logged on every step")
        check({r.get("dense_mode") for r in rows} == set(DENSE_MODES),
              "umg: the dense losses went through every dense mode")
    else:
        check(all(set(r) & {"region", "pixel"} == set() for r in rows),
              "clip: image-text loss only")
    for file_name in ["config.json", "model.safetensors", "vocab.json", "merges.txt"]:
        check(os.path.exists(os.path.join(out_dir, file_name)), "%s: exported %s" % (name, file_name))
    check_log_summary(name, log_path, rows)
    return header


def check_log_summary(name, log_path, rows):
    """log_summary.py's window means are those of the log's own records; a window that
    cannot be read is refused, naming it."""
    result = subprocess.run([TORCH_PYTHON, LOG_SUMMARY_PY, log_path, "--json",
                             "--steps", "0-4,last7"], capture_output=True, text=True)
    if not check(result.returncode == 0, "%s: log_summary.py runs (%s)"
                 % (name, result.stderr.strip())):
        return
    got = json.loads(result.stdout)["windows"]
    for window, records in zip(got, [rows[:5], rows[-7:]]):
        for part in ["loss", "image", "region"]:
            values = [r[part] for r in records if part in r]
            if not values:
                continue
            want = sum(values) / len(values)
            check(window["steps"] == len(records) and abs(window[part] - want) < 1e-9,
                  "%s: log_summary %s mean of %s over %d steps is %.6f (the log's own: %.6f)"
                  % (name, window["window"], part, window["steps"], window[part], want))
    result = subprocess.run([TORCH_PYTHON, LOG_SUMMARY_PY, log_path, "--steps", "9-3"],
                            capture_output=True, text=True)
    check(result.returncode == 1 and "'9-3'" in result.stderr,
          "%s: log_summary refuses --steps 9-3, naming it (%s)" % (name, result.stderr.strip()))


def check_runtime(name, tool, device, model_dir, probe_dir):
    with open(os.path.join(probe_dir, "probe.json")) as f:
        probe = json.load(f)
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(model_dir, "vocab.json")) as f:
        vocab_size = max(json.load(f).values()) + 1
    tensor = os.path.join(probe_dir, "probe.npy")

    info = json.loads(umgclip(tool, device, "info", model_dir).stdout)
    vc, tc = config["vision_config"], config["text_config"]
    check(info["layout"] == "huggingface" and info["embed_dim"] == config["projection_dim"]
          and info["vision"]["image_size"] == vc["image_size"]
          and info["vision"]["patch_size"] == vc["patch_size"]
          and info["vision"]["layers"] == vc["num_hidden_layers"]
          and info["text"]["layers"] == tc["num_hidden_layers"]
          and info["text"]["context_length"] == tc["max_position_embeddings"]
          and info["vision"]["act"] == vc["hidden_act"],
          "%s: umgclip info reports the exported sizes" % name)
    check(info["text"]["vocab_size"] == vocab_size == tc["vocab_size"],
          "%s: vocabulary of %d tokens in config, vocab.json and the runtime" % (name, vocab_size))

    tokens = json.loads(umgclip(tool, device, "tokenize", model_dir, *probe["texts"]).stdout)
    check([row[:len(expected)] for row, expected in zip(tokens["tokens"], probe["tokens"])]
          == probe["tokens"], "%s: the runtime tokenizes like training (%d texts)"
          % (name, len(probe["texts"])))
    check(all(len(row) == 5 for row, text in zip(probe["tokens"], probe["texts"])
              if len(text.split()) == 3 and text.startswith("a ")),
          "%s: 'a colour shape' phrases are start + three whole-word tokens + end" % name)

    texts = json.loads(umgclip(tool, device, "encode-text", model_dir, *probe["texts"]).stdout)
    c = min_row_cosine(texts["embeddings"], probe["text_embeddings"])
    check(c >= MIN_COSINE, "%s: encode-text agrees with PyTorch, worst cosine %.6f" % (name, c))

    image = json.loads(umgclip(tool, device, "encode-image", model_dir, "--tensor",
                               tensor).stdout)
    c = cosine(image["embedding"], probe["image_embedding"])
    check(c >= MIN_COSINE, "%s: encode-image --tensor agrees with PyTorch, cosine %.6f"
          % (name, c))

    with tempfile.TemporaryDirectory() as scratch:
        for mode in DENSE_MODES:
            out = os.path.join(scratch, mode + ".npy")
            umgclip(tool, device, "encode-dense", model_dir, "--tensor", tensor, "--dense-mode",
                    mode, "--out", out)
            shape, flat = read_npy_f32(out)
            expected = [cell for row in probe["dense"][mode] for cell in row]
            dim = shape[-1]
            cells = [flat[i:i + dim] for i in range(0, len(flat), dim)]
            c = min_row_cosine(cells, expected)
            check(c >= MIN_COSINE, "%s: encode-dense %s agrees with PyTorch, worst cell cosine %.6f"
                  % (name, mode, c))

    boxes = ";".join(",".join(str(v) for v in box) for box in probe["boxes"])
    regions = json.loads(umgclip(tool, device, "encode-regions", model_dir, "--tensor", tensor,
                                 "--boxes", boxes).stdout)
    c = min_row_cosine(regions["embeddings"], probe["regions_naclip"])
    check(c >= MIN_COSINE, "%s: encode-regions (RoI-Align) agrees with PyTorch, worst cosine %.6f"
          % (name, c))

    labels = probe["classify"]["labels"]
    result = json.loads(umgclip(tool, device, "classify", model_dir,
                                os.path.join(probe_dir, "probe.png"), "--labels",
                                ",".join(labels)).stdout)["results"]
    scores = [r["score"] for r in result]
    check(sorted(r["label"] for r in result) == sorted(labels)
          and scores == sorted(scores, reverse=True) and abs(sum(scores) - 1) < 1e-3,
          "%s: classify on the generated PNG ranks all %d labels" % (name, len(labels)))
    expected = dict(zip(labels, probe["classify"]["scores"]))
    worst = max(abs(r["score"] - expected[r["label"]]) for r in result)
    check(worst <= 2e-3, "%s: classify scores match PyTorch on the PNG, worst difference %.2g"
          % (name, worst))
    return image["embedding"]


def check_options(tool, device, work):
    """--set refuses what is not a number of model.TINY, naming it; a valid one reaches the
    exported model (and the runtime loads it); --word-weight adds its loss to the log."""
    for bad, names in [("nope=3", "--set 'nope=3'"), ("patch_size=x", "--set 'patch_size=x'"),
                       ("vision_width=0", "--set 'vision_width=0'"), ("act=2", "--set 'act=2'"),
                       ("patch_size=5", "image_size 64 is not a multiple of patch_size 5"),
                       ("vision_heads=3", "vision_width 128 is not a multiple of vision_heads 3")]:
        result = subprocess.run([TORCH_PYTHON, TRAIN_PY, "--model", "umg", "--steps", "1",
                                 "--out", os.path.join(work, "refused"), "--set", bad],
                                capture_output=True, text=True)
        check(result.returncode == 2 and names in result.stderr,
              "--set %s is refused with a message naming it (exit %d: %s)"
              % (bad, result.returncode, result.stderr.strip().splitlines()[-1:]))
    out_dir, log_path = os.path.join(work, "p4"), os.path.join(work, "p4.jsonl")
    result = subprocess.run([TORCH_PYTHON, TRAIN_PY, "--model", "umg", "--steps", "2", "--batch",
                             "4", "--set", "patch_size=4", "--set", "vision_width=64",
                             "--set", "vision_heads=2", "--word-weight", "1", "--free-colours",
                             "0", "--out", out_dir,
                             "--log", log_path], capture_output=True, text=True)
    if not check(result.returncode == 0, "train.py --set patch_size=4 ... --word-weight 1 runs"):
        print(result.stdout + result.stderr)
        return
    vision = json.loads(umgclip(tool, device, "info", out_dir).stdout)["vision"]
    check((vision["patch_size"], vision["width"], vision["heads"]) == (4, 64, 2),
          "the overrides reach the exported model: %s" % vision)
    header, rows = read_log(log_path)
    check(len(rows) == 2 and all(r.get("words", 0) > 0 for r in rows),
          "--word-weight logs its loss")
    free = header["args"]["free_colours"]
    check(free == 0.0, "--free-colours 0 reaches the run: %s" % free)


# Run by TORCH_PYTHON: what train.free_coloured does to 40 training scenes, as JSON.
FREE_COLOURED_PY = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import scenes, train
named = np.array(list(scenes.COLOURS.values())) * 255.0
out = []
for i in range(40):
    scene = scenes.generate("train", 3, i)
    same = train.free_coloured(scene, 0.0, np.random.default_rng(i))
    free = train.free_coloured(scene, 1.0, np.random.default_rng(i))
    inside = np.any([t.mask for t in scene.things], axis=0)
    # each repainted thing's mean colour against the nearest named colour
    nearest = [float(np.min(np.linalg.norm(named - free.image[t.mask].mean(0), axis=1)))
               for t in free.things]
    out.append({"unchanged": bool(same is scene),
                "colours": [t.colour for t in free.things],
                "phrases": [t.phrase for t in free.things], "shapes": [t.shape for t in scene.things],
                "caption": free.caption, "stuff_same": bool((free.image[~inside] == scene.image[~inside]).all()),
                "nearest": min(nearest)})
print(json.dumps(out))
"""


def check_free_colours(work):
    """--free-colours: train.free_coloured repaints things in unnamed colours and names them by
    shape alone, leaving stuff and share 0 untouched; a bad share is refused; a run logs its
    losses."""
    result = subprocess.run([TORCH_PYTHON, "-c", FREE_COLOURED_PY, os.path.dirname(TRAIN_PY)],
                            capture_output=True, text=True)
    if not check(result.returncode == 0, "free_coloured runs"):
        print(result.stderr)
        return
    rows = json.loads(result.stdout)
    colour_words = ("red", "green", "blue", "yellow", "purple", "orange", "white", "black")
    check(all(r["unchanged"] for r in rows), "share 0 leaves every scene as it was")
    check(all(c is None for r in rows for c in r["colours"])
          and all(p == ["a " + s for s in r["shapes"]] for r in rows for p in [r["phrases"]]),
          "share 1: every thing loses its colour and is called by its shape alone")
    check(not any(w in r["caption"].split() for r in rows for w in colour_words),
          "share 1: no caption names a colour (%s)" % rows[0]["caption"])
    check(all(r["stuff_same"] for r in rows), "stuff pixels are not repainted")
    nearest = min(r["nearest"] for r in rows)
    check(nearest > 40, "repainted things are far from every named colour (nearest %.0f of 255)"
          % nearest)
    for bad, names in [(["--free-colours", "1.5"], "--free-colours 1.5"),
                       (["--free-colours", "0.3", "--word-weight", "1"],
                        "--free-colours and --word-weight")]:
        result = subprocess.run([TORCH_PYTHON, TRAIN_PY, "--model", "umg", "--steps", "1",
                                 "--out", os.path.join(work, "refused")] + bad,
                                capture_output=True, text=True)
        check(result.returncode == 2 and names in result.stderr,
              "%s is refused with a message naming it (exit %d)" % (" ".join(bad),
                                                                     result.returncode))
    log_path = os.path.join(work, "free.jsonl")
    result = subprocess.run([TORCH_PYTHON, TRAIN_PY, "--model", "umg", "--steps", "2", "--batch",
                             "8", "--free-colours", "1", "--out", os.path.join(work, "free"),
                             "--log", log_path], capture_output=True, text=True)
    if check(result.returncode == 0, "train.py --free-colours 1 runs"):
        _, logged = read_log(log_path)
        check(len(logged) == 2 and all(math.isfinite(r[k]) and r[k] > 0 for r in logged
                                       for k in ("image", "region", "pixel", "segmentation")),
              "--free-colours 1 logs finite losses: %s" % logged[-1:])
    else:
        print(result.stdout + result.stderr)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("umgclip")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", help="work in this directory and keep it")
    args = parser.parse_args()

    available, why = torch_available()
    if not available:
        print("SKIP: %s cannot import torch and numpy (%s); install python3-torch to run the "
              "training test" % (TORCH_PYTHON, why[0] if why else ""))
        return 77

    work = args.keep or tempfile.mkdtemp(prefix="umgclip-training-")
    os.makedirs(work, exist_ok=True)
    embeddings = {}
    try:
        for name in ["clip", "umg"]:
            out_dir = os.path.join(work, name)
            probe_dir = os.path.join(work, name + "-probe")
            log_path = os.path.join(work, name + ".jsonl")
            started = time.time()
            result = subprocess.run([TORCH_PYTHON, TRAIN_PY, "--model", name, "--steps",
                                     str(args.steps), "--batch", str(args.batch), "--seed",
                                     str(args.seed), "--out", out_dir, "--log", log_path,
                                     "--probe-dir", probe_dir], capture_output=True, text=True)
            if not check(result.returncode == 0, "%s: train.py ran %d steps in %.0f s"
                         % (name, args.steps, time.time() - started)):
                print(result.stdout + result.stderr)
                continue
            check_training(name, out_dir, log_path, args.steps)
            embeddings[name] = check_runtime(name, args.umgclip, args.device, out_dir, probe_dir)
        if len(embeddings) == 2:
            check(cosine(embeddings["clip"], embeddings["umg"]) < 0.999,
                  "the two models are different networks")
        check_options(args.umgclip, args.device, work)
        check_free_colours(work)
    except (RuntimeError, ValueError, OSError, KeyError) as e:
        check(False, "error: %s" % e)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
