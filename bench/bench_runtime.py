#!/usr/bin/env python3
"""Speed of the runtime against ONNX Runtime and PyTorch on the same weights, in one run.

Makes a CLIP with ViT-B/16 widths (12 + 12 layers by default, F16 storage, HuggingFace
layout) unless --model is given, exports its towers to ONNX (bench/ort_export.py), installs
ONNX Runtime from npm (onnxruntime-node, --ignore-scripts: its CPU library ships inside the
package) into --cache, and times, at --threads threads each:
  - PyTorch: the reference (tests/reference/clip_ref.py, float32) for batch 1, the exported
    module for batch 4;
  - ONNX Runtime CPU (bench/ort_bench.js: graph optimisation all, intra-op threads = --threads);
  - `umgclip bench` on each of --devices (UMGCLIP_THREADS = --threads), and bench/bench_batch
    for batched CPU passes.
Every implementation runs in a process of its own, so the peak resident memory of each is
measured (the process's maximum RSS). Each is timed in each of --rounds rounds (a round is
the median of --iterations runs) and its best round is kept; times drift on shared machines,
so the ratios are the result. Ratio = the other's time / this time (above 1: faster).

usage: bench_runtime.py --umgclip build/tools/umgclip [--model DIR] [--layers 12] [--size 224]
                        [--iterations 10] [--rounds 3] [--threads N] [--devices cpu]
                        [--batch 4] [--cache DIR]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ORT_VERSION = "1.30.0"
TEXT = [49406, 320, 1125, 539, 320, 2368, 49407]  # "a photo of a cat"


def median_ms(fn, iterations):
    fn()  # warm-up
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def torch_worker(args):
    """Runs inside its own process: PyTorch's times as one JSON line."""
    import torch
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
    import clip_ref
    import ort_export

    torch.set_num_threads(args.threads)
    model = clip_ref.load(args.model)
    generator = torch.Generator().manual_seed(1)
    pixels = torch.randn(1, 3, args.size, args.size, generator=generator)
    batch = torch.randn(args.batch, 3, args.size, args.size, generator=generator)
    vision = ort_export.Vision(model, args.size).eval()
    with torch.no_grad():
        result = {
            "image_ms": median_ms(lambda: model.encode_image(pixels), args.iterations),
            # the reference's dense pass also runs the whole backbone, as umgclip's does
            "image_dense_ms": median_ms(lambda: model.encode_dense(pixels, args.dense_mode),
                                        args.iterations),
            "text_ms": median_ms(lambda: model.encode_text(TEXT + [0] * 70), args.iterations),
            "batch_ms": median_ms(lambda: vision(batch), max(args.iterations // 2, 1)),
        }
    print(json.dumps(result))


class Measured(subprocess.Popen):
    """A Popen whose wait() records the child's own peak RSS through wait4."""

    def _try_wait(self, wait_flags):
        pid, status, usage = os.wait4(self.pid, wait_flags)
        if pid == self.pid:
            self.peak_rss = usage.ru_maxrss * 1024
        return pid, status


def run_child(argv, env=None):
    process = Measured(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit("%s failed (%d):\n%s" % (" ".join(argv), process.returncode, err))
    return json.loads(out.strip().splitlines()[-1]), process.peak_rss


def install_ort(cache):
    package = os.path.join(cache, "node_modules", "onnxruntime-node", "package.json")
    if os.path.exists(package) and json.load(open(package))["version"] == ORT_VERSION:
        return os.path.join(cache, "node_modules")
    os.makedirs(cache, exist_ok=True)
    subprocess.run(["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix",
                    cache, "onnxruntime-node@" + ORT_VERSION], check=True,
                   stdout=subprocess.DEVNULL)
    return os.path.join(cache, "node_modules")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--umgclip", required=True)
    parser.add_argument("--model")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--devices", default="cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--dense-mode", default="naclip")
    parser.add_argument("--cache", help="where ONNX Runtime is installed "
                        "(default: bench-cache beside the umgclip build)")
    parser.add_argument("--worker", choices=["torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return torch_worker(args)

    umgclip = os.path.abspath(args.umgclip)
    build = os.path.dirname(os.path.dirname(umgclip))
    bench_batch = os.path.join(build, "bench", "bench_batch")
    cache = args.cache or os.path.join(build, "bench-cache")
    node_path = install_ort(cache)
    load_before = os.getloadavg()
    rows, batches = {}, {}

    def keep(table, name, result, rss):
        row = table.setdefault(name, {"peak_rss": 0})
        for key, value in result.items():
            if key.endswith("_ms"):
                row[key] = min(row.get(key, value), value)
        row["peak_rss"] = max(row["peak_rss"], rss or 0)

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model
        if model_dir is None:
            model_dir = os.path.join(tmp, "b16")
            subprocess.run([sys.executable, os.path.join(HERE, "..", "tests", "reference",
                                                          "make_model.py"),
                            "--preset", "b16-hf-f16", "--vision-layers", str(args.layers),
                            "--text-layers", str(args.layers), "--out", model_dir], check=True,
                           stdout=subprocess.DEVNULL)
        onnx_dir = os.path.join(tmp, "onnx")
        subprocess.run([sys.executable, os.path.join(HERE, "ort_export.py"), model_dir, onnx_dir,
                        "--size", str(args.size)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        common = ["--iterations", str(args.iterations)]
        umg_env = dict(os.environ, UMGCLIP_THREADS=str(args.threads))
        ort_env = dict(os.environ, NODE_PATH=node_path)
        ort_name = "onnxruntime %s cpu" % ORT_VERSION
        for _ in range(args.rounds):
            result, rss = run_child([sys.executable, os.path.abspath(__file__), "--umgclip",
                                     umgclip, "--worker", "torch", "--model", model_dir,
                                     "--size", str(args.size), "--threads", str(args.threads),
                                     "--batch", str(args.batch), "--dense-mode",
                                     args.dense_mode] + common)
            keep(rows, "pytorch 1.13 float32", result, rss)
            keep(batches, "pytorch 1.13 float32", {"batch_ms": result["batch_ms"]}, rss)
            for kind, batch, key in (("vision", 1, "image_ms"), ("text", 1, "text_ms"),
                                     ("vision", args.batch, "batch_ms")):
                result, rss = run_child(["node", os.path.join(HERE, "ort_bench.js"),
                                         os.path.join(onnx_dir, kind + ".onnx"), "--kind", kind,
                                         "--batch", str(batch), "--size", str(args.size),
                                         "--threads", str(args.threads)] + common, ort_env)
                keep(batches if batch > 1 else rows, ort_name, {key: result["ms"]}, rss)
            for device in args.devices.split(","):
                result, rss = run_child([umgclip, "bench", model_dir, "--device", device,
                                         "--size", str(args.size), "--dense-mode",
                                         args.dense_mode] + common, umg_env)
                keep(rows, "umgclip " + result["backend"], result, rss)
            if os.path.exists(bench_batch):
                result, rss = run_child([bench_batch, model_dir, "--batch", str(args.batch),
                                         "--size", str(args.size)] + common, umg_env)
                keep(batches, "umgclip " + result["backend"],
                     {"batch_ms": result["batched_ms"], "single_ms": result["one_by_one_ms"]},
                     rss)
    load_after = os.getloadavg()

    torch_row, ort_row = rows["pytorch 1.13 float32"], rows[ort_name]
    print("model: ViT-B/16 widths, %d vision + %d text layers, F16 weights, %dx%d input, dense "
          "mode %s; %d threads everywhere; best of %d rounds, each the median of %d runs"
          % (args.layers, args.layers, args.size, args.size, args.dense_mode, args.threads,
             args.rounds, args.iterations))
    print("load average (1 min) %.2f before, %.2f after" % (load_before[0], load_after[0]))

    def cell(row, key, reference):
        if key not in row:
            return "%10s %7s" % ("-", "-")
        if reference is None or key not in reference:
            return "%10.1f %7s" % (row[key], "-")
        return "%10.1f %6.2fx" % (row[key], reference[key] / row[key])

    print("%-46s %10s %7s %7s %10s %7s %7s %10s %7s %7s %8s" % (
        "implementation", "image ms", "vs ORT", "vs PT", "img+dense", "vs ORT", "vs PT",
        "text ms", "vs ORT", "vs PT", "peak MB"))
    for name, row in rows.items():
        line = "%-46s" % name
        for key in ("image_ms", "image_dense_ms", "text_ms"):
            line += " " + cell(row, key, ort_row) + " " + cell(row, key, torch_row).split()[-1].rjust(7)
        print(line + " %8.0f" % (row["peak_rss"] / 2 ** 20))
    print("img+dense: one pass giving the CLS embedding and the %s dense map (PyTorch: the "
          "reference's dense pass; ONNX Runtime: not exported)" % args.dense_mode)
    print("peak MB: the process's maximum resident memory (ONNX Runtime: the larger of its "
          "vision and text sessions, one process each; the others load both towers)")
    print()
    print("batch %d (%d frames or streams at once), image embedding only:" % (args.batch,
                                                                                args.batch))
    print("%-46s %12s %12s %8s %8s %12s" % ("implementation", "batch ms", "images/s", "vs ORT",
                                            "vs PT", "1-by-1 ms"))
    ort_batch, torch_batch = batches[ort_name], batches["pytorch 1.13 float32"]
    for name, row in batches.items():
        print("%-46s %12.1f %12.2f %7.2fx %7.2fx %12s" % (
            name, row["batch_ms"], args.batch * 1000.0 / row["batch_ms"],
            ort_batch["batch_ms"] / row["batch_ms"], torch_batch["batch_ms"] / row["batch_ms"],
            "%.1f" % row["single_ms"] if "single_ms" in row else "-"))
    print("umgclip batches through umgclip_encode_frames on RGB frames (colour conversion "
          "included); 1-by-1: the same frames one umgclip_encode_frame each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
