#!/usr/bin/env python3
"""Element overhead: frames/s through umgclipseg against `umgclip bench` on the same model and
network input size, in one run.

Makes a CLIP with ViT-B/16 widths (--layers vision and text layers, F16) unless --model is
given. `umgclip bench` gives the runtime's time for one image + dense pass on a prepared
tensor. The pipeline `videotestsrc ! NV12 WxH ! umgclipseg ! fakesink` is timed at two frame
counts and the difference divided by the extra frames, so model loading and planning drop out;
its time per frame includes everything the element adds: mapping, frame upload and conversion
on the device, segmentation, metadata. Ratio = element time / runtime time (1.0 = no overhead).

usage: bench_elements.py --umgclip build/tools/umgclip --plugin-path build/gst
                         [--model DIR] [--layers 12] [--frame 640x480] [--device cpu]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def pipeline_seconds(args, model_dir, frames):
    width, height = args.frame.split("x")
    command = [
        "gst-launch-1.0", "-q", "videotestsrc", "num-buffers=%d" % frames, "pattern=ball", "!",
        "video/x-raw,format=NV12,width=%s,height=%s" % (width, height), "!",
        "umgclipseg", "model=%s" % model_dir, "device=%s" % args.device,
        "input-size=%d" % args.size, "labels=person,car,tree,sky,road", "threshold=0", "!",
        "fakesink", "sync=false",
    ]
    env = dict(os.environ, GST_PLUGIN_PATH=args.plugin_path)
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--umgclip", required=True)
    parser.add_argument("--plugin-path", required=True)
    parser.add_argument("--model")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--frame", default="640x480")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model
        if model_dir is None:
            model_dir = os.path.join(tmp, "b16")
            subprocess.run([sys.executable, os.path.join(HERE, "..", "tests", "reference",
                                                          "make_model.py"),
                            "--preset", "b16-hf-f16", "--vision-layers", str(args.layers),
                            "--text-layers", str(args.layers), "--out", model_dir], check=True)
        runtime_ms = element_ms = None
        for _ in range(args.rounds):
            out = subprocess.run([args.umgclip, "bench", model_dir, "--device", args.device,
                                  "--size", str(args.size), "--iterations",
                                  str(args.frames)], capture_output=True, text=True, check=True)
            result = json.loads(out.stdout)
            ms = result["image_dense_ms"]
            runtime_ms = ms if runtime_ms is None else min(runtime_ms, ms)
            short = pipeline_seconds(args, model_dir, 2)
            long = pipeline_seconds(args, model_dir, 2 + args.frames)
            ms = (long - short) * 1000 / args.frames
            element_ms = ms if element_ms is None else min(element_ms, ms)
        backend = result["backend"]

    print("model: ViT-B/16 widths, %d + %d layers, F16; network input %dx%d; frames %s NV12; "
          "device %s (%s); best of %d rounds" % (args.layers, args.layers, args.size, args.size,
                                                  args.frame, args.device, backend, args.rounds))
    print("%-52s %10s %10s" % ("", "ms/frame", "frames/s"))
    print("%-52s %10.1f %10.2f" % ("umgclip bench (image + dense pass on a tensor)", runtime_ms,
                                   1000 / runtime_ms))
    print("%-52s %10.1f %10.2f" % ("umgclipseg in a pipeline (everything per frame)", element_ms,
                                   1000 / element_ms))
    print("element / runtime time: %.3f (overhead %+.1f %%)" % (element_ms / runtime_ms,
                                                                  100 * (element_ms / runtime_ms - 1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
