#!/usr/bin/python3
"""Evaluate trained models through the C runtime and print the docs/RESULTS.md table.

  evaluate.py --eval build/tools/umgclip-eval --model clip=DIR --model umg=DIR \\
      [--count 200] [--seed 0] [--split heldout] [--device cpu] [--data DIR] [--json OUT.json]
      [--scenes both|generator|independent]

Writes --count held-out scenes (training/scenes.py, split "heldout": colour-shape pairings
never seen in training; --split train gives the seen pairings, in new scenes when --seed
differs from the training seed) to --data (default: a temporary directory), runs umgclip-eval on
each model over every dense mode, and prints a Markdown table: zero-shot top-1 and
text-to-image R@1 once per model, region-tag top-1, mIoU and PQ (things, stuff) per dense
mode, and PQ of things as one class ("things, any label": what grouping alone gives, against
PQ things, which needs the label right too). The metrics are computed by umgclip-eval, in C,
from what the runtime returns.

With --scenes both (the default) a second table follows, on as many scenes of the same
held-out pairings from tests/independent_scenes.py, a generator that shares no code with
training/ (PIL shapes on plain, gradient and noise backgrounds, which are void: unscored, so
PQ stuff has nothing to measure there and reads "-").
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
INDEPENDENT = os.path.join(HERE, "..", "tests", "independent_scenes.py")
MODES = ["naclip", "clearclip", "sclip", "maskclip"]


def run_eval(tool, model, data, device):
    proc = subprocess.run([tool, model, data, "--device", device], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        sys.exit("umgclip-eval failed on %s: %s" % (model, proc.stderr.strip()))
    return json.loads(proc.stdout)


def percent(value):
    return "%.1f" % (100.0 * value)


def table(results, stuff=True):
    """results: [(name, umgclip-eval JSON)] -> Markdown lines."""
    lines = ["| model | dense mode | zero-shot top-1 | text→image R@1 | region-tag top-1 "
             "| mIoU | PQ | PQ things | PQ stuff | PQ things, any label |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, result in results:
        for mode in MODES:
            m = result["modes"][mode]
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                name, mode, percent(result["zero_shot_top1"]), percent(result["retrieval_r1"]),
                percent(m["region_top1"]), percent(m["miou"]), percent(m["pq"]),
                percent(m["pq_things"]), percent(m["pq_stuff"]) if stuff else "-",
                percent(m["pq_things_any_label"])))
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
    parser.add_argument("--scenes", choices=["both", "generator", "independent"],
                        default="both", help="which scene sets to measure (default both)")
    args = parser.parse_args()

    models = []
    for item in args.model:
        name, sep, path = item.partition("=")
        if not sep or not os.path.isdir(path):
            sys.exit("--model %s: expected NAME=DIR with an existing directory" % item)
        models.append((name, path))
    tables = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = args.data or tmp
        if args.scenes in ("both", "generator"):
            data = os.path.join(base, args.split)
            subprocess.run([sys.executable, os.path.join(HERE, "scenes.py"), "--split",
                            args.split, "--count", str(args.count), "--seed", str(args.seed),
                            "--out", data], check=True, stdout=subprocess.DEVNULL)
            tables["generator"] = [(name, run_eval(args.eval, path, data, args.device))
                                   for name, path in models]
        if args.scenes in ("both", "independent"):
            if args.split != "heldout":
                sys.exit("--scenes independent draws held-out pairings only: use --split heldout")
            data = os.path.join(base, "independent")
            subprocess.run([sys.executable, INDEPENDENT, "--count", str(args.count), "--seed",
                            str(args.seed), "--out", data], check=True,
                           stdout=subprocess.DEVNULL)
            tables["independent"] = [(name, run_eval(args.eval, path, data, args.device))
                                     for name, path in models]
    if args.json:
        with open(args.json, "w") as f:
            json.dump({k: dict(v) for k, v in tables.items()}, f, indent=1)
            f.write("\n")
    for kind, results in tables.items():
        if len(tables) > 1:
            print("%s scenes (%s):" % ("training/scenes.py" if kind == "generator"
                                      else "tests/independent_scenes.py", args.split))
        print("\n".join(table(results, stuff=kind == "generator")))
        if len(tables) > 1:
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
