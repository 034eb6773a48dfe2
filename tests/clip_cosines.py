#!/usr/bin/python3
"""The cosine of every frame of a clip with each query, through the umgclip CLI: what a
threshold of umgclipalert (or of a test) has to sit between.

usage: clip_cosines.py UMGCLIP MODEL DIR [--present A:B] QUERY...

DIR holds frame-%06d.png (tests/clips.py event writes such a clip). Every frame goes through
`umgclip encode-image --normalize`, every query through `umgclip encode-text --normalize`.
Prints one line per frame (the cosine with each query), then for each query the lowest and
highest cosine over the frames A..B (both included) and over the other frames.
"""
import argparse
import json
import os
import subprocess
import sys


def run_json(command):
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit("clip_cosines.py: %s failed: %s" % (" ".join(command[:2]), result.stderr.strip()))
    return json.loads(result.stdout)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("umgclip")
    parser.add_argument("model")
    parser.add_argument("dir")
    parser.add_argument("queries", nargs="+")
    parser.add_argument("--present", default=None, help="A:B, frames where the thing is")
    args = parser.parse_args()
    first, last = -1, -1
    if args.present:
        a, sep, b = args.present.partition(":")
        if not (sep and a.isdigit() and b.isdigit() and int(a) <= int(b)):
            parser.error("--present %r: want A:B with A <= B" % args.present)
        first, last = int(a), int(b)
    texts = run_json([args.umgclip, "encode-text", args.model, "--normalize"] + args.queries)
    texts = texts["embeddings"]
    frames = sorted(f for f in os.listdir(args.dir)
                    if f.startswith("frame-") and f.endswith(".png"))
    if not frames:
        sys.exit("clip_cosines.py: no frame-NNNNNN.png in %s" % args.dir)
    inside = {q: [] for q in args.queries}
    outside = {q: [] for q in args.queries}
    for name in frames:
        index = int(name[len("frame-"):-len(".png")])
        image = run_json([args.umgclip, "encode-image", args.model, "--normalize",
                          os.path.join(args.dir, name)])["embedding"]
        cosines = [sum(x * y for x, y in zip(image, t)) for t in texts]
        print("%4d %s" % (index, " ".join("%.3f" % c for c in cosines)))
        for query, cosine in zip(args.queries, cosines):
            (inside if first <= index <= last else outside)[query].append(cosine)
    for query in args.queries:
        parts = ["%s %.3f to %.3f" % (label, min(v), max(v))
                 for label, v in [("frames %s:" % args.present, inside[query]),
                                  ("other frames:", outside[query])] if v]
        print("%s: %s" % (query, "; ".join(parts)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
