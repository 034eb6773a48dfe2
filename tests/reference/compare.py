#!/usr/bin/python3
# Checks the umgclip CLI against the PyTorch reference live: image, text, dense maps in all
# modes and region embeddings, at the checkpoint's size and at other sizes.
"""Compare `umgclip` with clip_ref.py on one model directory.

  compare.py --umgclip build/tools/umgclip --model DIR --device cpu|vulkan [--sizes 320x240,...]
  compare.py ... --preset b16-hf-f16     # generate DIR with make_model.py first if needed

Prints one line per check (cosine = the worst cosine over the rows of the output, relative
error = ‖cli − ref‖ / ‖ref‖ over the whole output), then "N passed, M failed".
Exit status: 0 all passed, 1 any failure, 77 (skipped) without torch / numpy / BPE data.
"""

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

SKIP = 77
try:
    import numpy as np
    import torch
except ImportError as e:
    print("compare.py: skipped, %s (run with Debian's /usr/bin/python3)" % e)
    sys.exit(SKIP)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import clip_ref  # noqa: E402
import make_model  # noqa: E402
import tokenizer_ref  # noqa: E402

TEXTS = [
    "a photo of a cat",
    "two red cars parked on a wet street at night",
    "A DOG!!  jumping   over the fence",
    "it's 3 o'clock &amp; the café is open",
    "",
]


class Checker:
    def __init__(self, min_cosine, max_rel_err):
        self.min_cosine, self.max_rel_err = min_cosine, max_rel_err
        self.passed = self.failed = 0

    def report(self, ok, name, detail):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print("%s  %-34s %s" % ("PASS" if ok else "FAIL", name, detail), flush=True)

    def compare(self, name, got, expected):
        got = np.asarray(got, dtype=np.float64)
        expected = np.asarray(expected, dtype=np.float64)
        if got.shape != expected.shape:
            self.report(False, name, "shape %s, expected %s" % (got.shape, expected.shape))
            return
        rows_got = got.reshape(-1, expected.shape[-1])
        rows_expected = expected.reshape(-1, expected.shape[-1])
        norms = np.linalg.norm(rows_got, axis=1) * np.linalg.norm(rows_expected, axis=1)
        cosine = float(np.min(np.sum(rows_got * rows_expected, axis=1) / np.maximum(norms, 1e-30)))
        rel_err = float(np.linalg.norm(got - expected) / max(np.linalg.norm(expected), 1e-30))
        ok = bool(np.isfinite(got).all()) and cosine >= self.min_cosine and rel_err <= self.max_rel_err
        self.report(ok, name, "cos %.8f (>= %g)  rel err %.2e (<= %g)"
                    % (cosine, self.min_cosine, rel_err, self.max_rel_err))


class Cli:
    def __init__(self, path, model_dir, device, timeout):
        self.path, self.model_dir, self.device, self.timeout = path, model_dir, device, timeout

    def run(self, command, *args):
        """(JSON output or None, error text or None)."""
        argv = [self.path, command, self.model_dir] + list(args) + ["--device", self.device]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            return None, "timed out after %d s: %s" % (self.timeout, " ".join(argv))
        except OSError as e:
            return None, "cannot run %s: %s" % (self.path, e)
        if done.returncode != 0:
            stderr = done.stderr.strip().splitlines()
            return None, "exit %d: %s" % (done.returncode, " | ".join(stderr[-3:]) or "no message")
        try:
            return json.loads(done.stdout), None
        except ValueError:
            return None, "stdout is not JSON: %r" % done.stdout[:200]


def ensure_model(model_dir, preset, seed, bpe_path):
    """Generate the preset into model_dir unless an up-to-date copy is there. A lock file
    keeps concurrent test runs (cpu and vulkan) from generating it twice."""
    with open(os.path.join(HERE, "make_model.py"), "rb") as f:
        stamp = "%s seed %d %s" % (preset, seed, hashlib.sha256(f.read()).hexdigest()[:16])
    stamp_path = os.path.join(model_dir, ".make_model_stamp")
    parent = os.path.dirname(os.path.abspath(model_dir))
    os.makedirs(parent, exist_ok=True)
    with open(os.path.abspath(model_dir) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(stamp_path) as f:
                if f.read() == stamp:
                    return
        except OSError:
            pass
        print("generating %s into %s" % (preset, model_dir), flush=True)
        staging = tempfile.mkdtemp(prefix=".model-", dir=parent)
        try:
            make_model.make_model(make_model.PRESETS[preset], seed, staging, bpe_path)
            with open(os.path.join(staging, ".make_model_stamp"), "w") as f:
                f.write(stamp)
            if os.path.isdir(model_dir):
                shutil.rmtree(model_dir)
            os.rename(staging, model_dir)
        finally:
            if os.path.isdir(staging):
                shutil.rmtree(staging)


def parse_sizes(text, native, patch):
    sizes = []
    for item in (text or "%dx%d,320x240" % (native, native)).split(","):
        width, height = [int(v) for v in item.lower().split("x")]
        rounded = (max(patch, width - width % patch), max(patch, height - height % patch))
        if rounded != (width, height):
            print("note: %dx%d is not a multiple of the patch size %d; using %dx%d"
                  % (width, height, patch, rounded[0], rounded[1]))
        if rounded not in sizes:
            sizes.append(rounded)
    return sizes


def stable_box(box, patch, grid_w, grid_h):
    """Grow a box by whole pixels until no RoI-Align sample sits near -1 or the map's far
    edge, where one rounding step would switch a sample between a value and zero."""
    x, y, w, h = box
    for step in range(8):
        candidate = [x, y, w + step, h + step]
        ys, xs = clip_ref.roi_align_samples(candidate, patch)
        gaps = [float((c + 1.0).abs().min()) for c in (ys, xs)]
        gaps += [float((ys - grid_h).abs().min()), float((xs - grid_w).abs().min())]
        if min(gaps) >= 0.05:
            return candidate
    return [x, y, w, h]


def test_boxes(width, height, patch):
    """The whole image, a small box inside, a box partly outside the image."""
    boxes = [[0, 0, width, height],
             [int(width * 0.3), int(height * 0.25), max(2, int(width * 0.2)), max(2, int(height * 0.15))],
             [int(width * 0.75), -int(height * 0.1), int(width * 0.4), int(height * 0.35)]]
    return [stable_box(b, patch, width // patch, height // patch) for b in boxes]


def check_text(checker, cli, model, tokenizer):
    tokens = [tokenizer.tokenize(t, model.context_length) for t in TEXTS]
    out, error = cli.run("tokenize", *TEXTS)
    if error:
        checker.report(False, "tokenize", error)
    else:
        def strip(ids):
            ids = list(ids)
            while ids and ids[-1] == 0:
                ids.pop()
            return ids
        got = [strip(t) for t in out.get("tokens", [])]
        expected = [strip(t) for t in tokens]
        bad = [i for i in range(len(expected)) if i >= len(got) or got[i] != expected[i]]
        checker.report(not bad and len(got) == len(expected), "tokenize %d texts" % len(TEXTS),
                       "all equal" if not bad else "differ for %s" % [TEXTS[i] for i in bad])
    out, error = cli.run("encode-text", *TEXTS)
    if error:
        checker.report(False, "text", error)
        return
    expected = np.stack([model.encode_text(t).numpy() for t in tokens], 0)
    checker.compare("text (%d texts)" % len(TEXTS), out.get("embeddings"), expected)


def check_size(checker, cli, model, width, height, region_modes, work_dir, seed):
    tag = "%dx%d" % (width, height)
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn(1, 3, height, width, generator=generator)
    tensor_path = os.path.join(work_dir, "input_%s.npy" % tag)
    np.save(tensor_path, pixels.numpy().astype(np.float32))

    out, error = cli.run("encode-image", "--tensor", tensor_path)
    if error:
        checker.report(False, "image " + tag, error)
    else:
        checker.compare("image " + tag, out.get("embedding"), model.encode_image(pixels).numpy())

    for mode in clip_ref.DENSE_MODES:
        name = "dense %s %s" % (mode, tag)
        out_path = os.path.join(work_dir, "dense_%s_%s.npy" % (mode, tag))
        _, error = cli.run("encode-dense", "--tensor", tensor_path, "--dense-mode", mode,
                           "--out", out_path)
        if error:
            checker.report(False, name, error)
            continue
        try:
            got = np.load(out_path)
        except (OSError, ValueError) as e:
            checker.report(False, name, "cannot read %s: %s" % (out_path, e))
            continue
        checker.compare(name, got, model.encode_dense(pixels, mode).numpy())

    boxes = test_boxes(width, height, model.patch_size)
    box_text = ";".join(",".join(str(v) for v in b) for b in boxes)
    for mode in region_modes:
        name = "regions %s %s" % (mode, tag)
        out, error = cli.run("encode-regions", "--tensor", tensor_path, "--boxes", box_text,
                             "--dense-mode", mode)
        if error:
            checker.report(False, name, error)
            continue
        checker.compare(name + " [%s]" % box_text, out.get("embeddings"),
                        model.encode_regions(pixels, boxes, mode).numpy())


def find_bpe(model_dir, bpe_option):
    in_model = os.path.join(model_dir, "bpe_simple_vocab_16e6.txt.gz")
    for path in [bpe_option, in_model, make_model.DEFAULT_BPE]:
        if path and os.path.exists(path):
            return path
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--umgclip", required=True, help="the umgclip executable")
    parser.add_argument("--model", required=True, help="model directory")
    parser.add_argument("--device", required=True, choices=["cpu", "vulkan", "auto"])
    parser.add_argument("--sizes", help="WxH,... (default: native and 320x240)")
    parser.add_argument("--preset", choices=sorted(make_model.PRESETS),
                        help="generate --model with make_model.py when missing or stale")
    parser.add_argument("--seed", type=int, default=0, help="model seed for --preset")
    parser.add_argument("--bpe", help="bpe_simple_vocab_16e6.txt.gz for the reference tokenizer")
    parser.add_argument("--region-modes", default="naclip,maskclip")
    parser.add_argument("--min-cosine", type=float, default=0.9999)
    parser.add_argument("--max-rel-err", type=float, default=1e-3)
    parser.add_argument("--timeout", type=int, default=300, help="seconds per CLI call")
    args = parser.parse_args()

    bpe_path = find_bpe(args.model, args.bpe)
    if bpe_path is None:
        print("compare.py: skipped, no bpe_simple_vocab_16e6.txt.gz (give --bpe)")
        return SKIP
    if args.preset:
        ensure_model(args.model, args.preset, args.seed, bpe_path)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    try:
        model = clip_ref.load(args.model)
    except (OSError, ValueError, KeyError) as e:
        print("compare.py: cannot load the reference model: %s" % e)
        return 1
    tokenizer = tokenizer_ref.load(bpe_path)
    print("model %s (%s, image %d, patch %d, embed %d), device %s"
          % (args.model, model.layout, model.image_size, model.patch_size, model.embed_dim,
             args.device), flush=True)

    checker = Checker(args.min_cosine, args.max_rel_err)
    cli = Cli(os.path.abspath(args.umgclip), args.model, args.device, args.timeout)
    region_modes = [m for m in args.region_modes.split(",") if m]
    work_dir = tempfile.mkdtemp(prefix="umgclip-compare-")
    try:
        check_text(checker, cli, model, tokenizer)
        sizes = parse_sizes(args.sizes, model.image_size, model.patch_size)
        for index, (width, height) in enumerate(sizes):
            check_size(checker, cli, model, width, height, region_modes, work_dir, 100 + index)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    print("%d passed, %d failed" % (checker.passed, checker.failed))
    return 1 if checker.failed else 0


if __name__ == "__main__":
    sys.exit(main())
