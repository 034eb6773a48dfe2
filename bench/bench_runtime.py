#!/usr/bin/env python3
"""Speed of the runtime against the PyTorch reference on the same weights, in one run.

Makes a CLIP with ViT-B/16 widths (12 + 12 layers by default, F16 storage, HuggingFace
layout) unless --model is given, times the PyTorch reference (tests/reference/clip_ref.py,
float32, at whichever of 1 thread or all cores is faster) and `umgclip bench` on each device,
and prints each time with its ratio to PyTorch. Absolute times drift on shared machines, so
every implementation is measured in each of --rounds rounds and its best round is kept; the
ratio is the result.

usage: bench_runtime.py --umgclip build/tools/umgclip [--model DIR] [--layers 12]
                        [--size 224] [--iterations 5] [--rounds 2] [--devices cpu,vulkan]
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
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))


def median_ms(fn, iterations):
    fn()  # warm-up
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--umgclip", required=True)
    parser.add_argument("--model")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--devices", default="cpu,vulkan")
    parser.add_argument("--dense-mode", default="naclip")
    args = parser.parse_args()

    import torch
    import clip_ref

    best = {}

    def keep(name, result):
        if name not in best:
            best[name] = dict(result)
        else:
            for key in ("image_ms", "image_dense_ms", "text_ms"):
                best[name][key] = min(best[name][key], result[key])

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model
        if model_dir is None:
            model_dir = os.path.join(tmp, "b16")
            subprocess.run([sys.executable, os.path.join(HERE, "..", "tests", "reference",
                                                          "make_model.py"),
                            "--preset", "b16-hf-f16", "--vision-layers", str(args.layers),
                            "--text-layers", str(args.layers), "--out", model_dir], check=True)
        model = clip_ref.load(model_dir)
        generator = torch.Generator().manual_seed(1)
        pixels = torch.randn(1, 3, args.size, args.size, generator=generator)
        tokens = [49406, 320, 1125, 539, 320, 2368, 49407] + [0] * 70
        for _ in range(args.rounds):
            for threads in sorted({1, os.cpu_count()}):
                torch.set_num_threads(threads)
                keep("pytorch (float32, %d thread%s)" % (threads, "s" if threads > 1 else ""), {
                    "image_ms": median_ms(lambda: model.encode_image(pixels), args.iterations),
                    # the reference's dense pass also runs the whole backbone, as umgclip's does
                    "image_dense_ms": median_ms(lambda: model.encode_dense(pixels,
                                                                           args.dense_mode),
                                                args.iterations),
                    "text_ms": median_ms(lambda: model.encode_text(tokens), args.iterations),
                })
            for device in args.devices.split(","):
                out = subprocess.run([args.umgclip, "bench", model_dir, "--device", device,
                                      "--size", str(args.size), "--iterations",
                                      str(args.iterations), "--dense-mode", args.dense_mode],
                                     capture_output=True, text=True, check=True)
                result = json.loads(out.stdout)
                keep("umgclip " + result["backend"], result)

    torch_rows = [name for name in best if name.startswith("pytorch")]
    reference = min((best[name] for name in torch_rows), key=lambda r: r["image_ms"])
    rows = sorted(best.items(), key=lambda item: not item[0].startswith("pytorch"))
    print("model: ViT-B/16 widths, %d vision + %d text layers, F16 weights, %dx%d input, "
          "dense mode %s, median of %d per round" % (args.layers, args.layers, args.size, args.size,
                                           args.dense_mode, args.iterations))
    print("%-44s %12s %8s %16s %8s %10s %8s" % ("implementation", "image ms", "ratio",
                                                "image+dense ms", "ratio", "text ms", "ratio"))
    for name, result in rows:
        cells = []
        for key in ("image_ms", "image_dense_ms", "text_ms"):
            cells += [result[key], reference[key] / result[key]]
        print("%-44s %12.1f %7.2fx %16.1f %7.2fx %10.1f %7.2fx" % (name, *cells))
    print("ratio = time of the faster PyTorch setting / this time (above 1: faster than PyTorch); "
          "best of %d rounds" % args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
