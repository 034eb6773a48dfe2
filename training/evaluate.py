#!/usr/bin/python3
"""Evaluate trained models through the C runtime and print the docs/RESULTS.md table.

  evaluate.py --eval build/tools/umgclip-eval --model clip=DIR --model umg=DIR \\
      [--count 200] [--seed 0] [--split heldout] [--device cpu] [--data DIR] [--json OUT.json]

Writes --count held-out scenes (training/scenes.py, split "heldout": colour-shape pairings
never seen in training; --split train gives the seen pairings, in new scenes when --seed
differs from the training seed) to --data (default: a temporary directory), runs umgclip-eval on
each model over every dense mode, and prints a Markdown table: zero-shot top-1 and
text-to-image R@1 once per model, region-tag top-1, mIoU and PQ (things, stuff) per dense
mode. The metrics are computed by umgclip-eval, in C, from what the runtime returns.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
MODES = ["naclip", "clearclip", "sclip", "maskclip"]


def run_eval(tool, model, data, device):
    proc = subprocess.run([tool, model, data, "--device", device], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        sys.exit("umgclip-eval failed on %s: %s" % (model, proc.stderr.strip()))
    return json.loads(proc.stdout)


def percent(value):
    return "%.1f" % (100.0 * value)


def table(results):
    """results: [(name, umgclip-eval JSON)] -> Markdown lines."""
    lines = ["| model | dense mode | zero-shot top-1 | text→image R@1 | region-tag top-1 "
             "| mIoU | PQ | PQ things | PQ stuff |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, result in results:
        for mode in MODES:
            m = result["modes"][mode]
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                name, mode, percent(result["zero_shot_top1"]), percent(result["retrieval_r1"]),
                percent(m["region_top1"]), percent(m["miou"]), percent(m["pq"]),
                percent(m["pq_things"]), percent(m["pq_stuff"])))
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval", required=True, help="the umgclip-eval program")
    parser.add_argument("--model", action="append", required=True, metavar="NAME=DIR")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=["heldout", "train"], default="heldout")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", help="where the held-out scenes go (default: a temporary dir)")
    parser.add_argument("--json", help="also write the raw umgclip-eval results here")
    args = parser.parse_args()

    models = []
    for item in args.model:
        name, sep, path = item.partition("=")
        if not sep or not os.path.isdir(path):
            sys.exit("--model %s: expected NAME=DIR with an existing directory" % item)
        models.append((name, path))
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or os.path.join(tmp, args.split)
        subprocess.run([sys.executable, os.path.join(HERE, "scenes.py"), "--split", args.split,
                        "--count", str(args.count), "--seed", str(args.seed), "--out", data],
                       check=True)
        results = [(name, run_eval(args.eval, path, data, args.device)) for name, path in models]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(results), f, indent=1)
            f.write("\n")
    print("\n".join(table(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
