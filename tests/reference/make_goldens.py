#!/usr/bin/python3
# Regenerates the committed tiny test models (tests/models/) and their golden outputs
# (tests/data/golden/) from the PyTorch reference, so the C tests need no PyTorch.
"""Regenerate tests/models/<preset>/ and tests/data/golden/<preset>/ for the tiny presets.

  /usr/bin/python3 tests/reference/make_goldens.py [--preset NAME]

Output is deterministic: the same scripts give byte-identical models and goldens.
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import clip_ref  # noqa: E402
import make_model  # noqa: E402
import tokenizer_ref  # noqa: E402

TESTS_DIR = os.path.dirname(HERE)

TEXTS = [
    "a photo of a cat",
    "A DOG running on the   beach!!",
    "it's 2 o'clock &amp; the café is open",
    "",
    # Longer than the context: truncated, the end token kept at position 76.
    " ".join(["a very long caption about %d red cars and green trees," % i for i in range(12)]),
]

# Per preset: model seed, input sizes (width, height) — the checkpoint's own size and one
# non-square size that forces position interpolation — and per size three boxes: the
# whole image, a small box, a box partly outside the image.
GOLDEN_SETS = {
    "tiny-hf-f16": dict(seed=1, inputs=[
        ((32, 32), [[0, 0, 32, 32], [5, 3, 9, 7], [21, -16, 21, 21]]),
        ((40, 24), [[0, 0, 40, 24], [13, 5, 10, 8], [26, -13, 21, 21]]),
    ]),
    "tiny-openclip-bf16": dict(seed=2, inputs=[
        ((48, 48), [[0, 0, 48, 48], [9, 14, 13, 11], [-27, 28, 38, 24]]),
        ((80, 64), [[0, 0, 80, 64], [30, 21, 17, 13], [59, -32, 37, 48]]),
    ]),
}
REGION_MODES = ["naclip", "maskclip"]


def check_box_is_stable(box, patch, grid_w, grid_h):
    """RoI-Align is discontinuous where a sample crosses -1 or the map's far edge; keep
    golden boxes well away from those points so float rounding cannot flip a sample."""
    ys, xs = clip_ref.roi_align_samples(box, patch)
    for coords, size in [(ys, grid_h), (xs, grid_w)]:
        gap = min(float((coords + 1.0).abs().min()), float((coords - size).abs().min()))
        if gap < 0.05:
            raise ValueError("box %s has a RoI-Align sample within %g of an edge" % (box, gap))


def save_npy(path, array):
    np.save(path, np.ascontiguousarray(array))


def make_goldens(preset, bpe_path):
    spec = GOLDEN_SETS[preset]
    model_dir = os.path.join(TESTS_DIR, "models", preset)
    golden_dir = os.path.join(TESTS_DIR, "data", "golden", preset)
    for path in [model_dir, golden_dir]:
        if os.path.isdir(path):
            shutil.rmtree(path)
    make_model.make_model(make_model.PRESETS[preset], spec["seed"], model_dir, bpe_path)
    os.makedirs(golden_dir)

    model = clip_ref.load(model_dir)
    generator = torch.Generator().manual_seed(1000 + spec["seed"])
    cases = []
    for (width, height), boxes in spec["inputs"]:
        tag = "%dx%d" % (width, height)
        pixels = torch.randn(1, 3, height, width, generator=generator)
        input_name = "input_%s.npy" % tag
        save_npy(os.path.join(golden_dir, input_name), pixels.numpy().astype(np.float32))
        common = {"input": input_name, "width": width, "height": height}

        name = "image_%s.npy" % tag
        save_npy(os.path.join(golden_dir, name), model.encode_image(pixels).numpy())
        cases.append(dict(kind="image", **common, expected=name))

        for mode in clip_ref.DENSE_MODES:
            name = "dense_%s_%s.npy" % (mode, tag)
            save_npy(os.path.join(golden_dir, name), model.encode_dense(pixels, mode).numpy())
            cases.append(dict(kind="dense", **common, mode=mode, expected=name))

        grid_w, grid_h = width // model.patch_size, height // model.patch_size
        for box in boxes:
            check_box_is_stable(box, model.patch_size, grid_w, grid_h)
        for mode in REGION_MODES:
            name = "regions_%s_%s.npy" % (mode, tag)
            save_npy(os.path.join(golden_dir, name),
                     model.encode_regions(pixels, boxes, mode).numpy())
            cases.append(dict(kind="regions", **common, mode=mode, boxes=boxes, expected=name))

    tokenizer = tokenizer_ref.load(bpe_path)
    tokens = [tokenizer.tokenize(text, model.context_length) for text in TEXTS]
    save_npy(os.path.join(golden_dir, "text_tokens.npy"), np.array(tokens, dtype=np.int32))
    embeddings = torch.stack([model.encode_text(t) for t in tokens], 0)
    save_npy(os.path.join(golden_dir, "text.npy"), embeddings.numpy())
    cases.append(dict(kind="text", texts=TEXTS, tokens="text_tokens.npy", expected="text.npy"))

    with open(os.path.join(golden_dir, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("%s: %d cases in %s" % (preset, len(cases), os.path.relpath(golden_dir)))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(GOLDEN_SETS), action="append",
                        help="only this preset (repeatable); default: all")
    parser.add_argument("--bpe", default=make_model.DEFAULT_BPE)
    args = parser.parse_args()
    for preset in args.preset or sorted(GOLDEN_SETS):
        make_goldens(preset, args.bpe)
    return 0


if __name__ == "__main__":
    sys.exit(main())
