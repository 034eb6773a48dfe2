#!/usr/bin/python3
"""The shipped model on scenes from tests/independent_scenes.py, which shares no code with
training/: PIL-drawn shapes on plain, gradient and noise backgrounds.

  test_independent_scenes.py --cli UMGCLIP --eval UMGCLIP_EVAL --model DIR --count N
      --min-zero-shot X --min-classify X --min-region-top1 X --min-pq-things X

Checks:
  - the generator: every scene has a thing, things do not overlap, every box bounds its
    mask, all three background kinds occur, the same seed gives the same files;
  - umgclip-eval on the scenes (background pixels are void there): zero-shot top-1,
    region-tag top-1 and PQ on things reach their floors;
  - `umgclip classify` on the one-thing scenes, against the 48 colour-shape tags: the
    share whose best label is the thing reaches --min-classify, and agrees with
    umgclip-eval's zero-shot count on those scenes within 5 points;
  - void: background pixels are not scored; a copy of the scenes whose stuff list names
    the background as a segment ("wall") is scored there, so mIoU and PQ stuff change while
    region tags do not.
Exit 0 on success, 1 on a failed check, 77 (skipped) without numpy or PIL.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
try:
    import numpy as np
    import PIL  # noqa: F401
except ImportError as error:
    print("SKIP: numpy or PIL (python3-pil) is missing for %s: %s" % (sys.executable, error))
    sys.exit(77)


def decode_rle(runs, size):
    flat = np.zeros(size * size, dtype=bool)
    position, value = 0, False
    for run in runs:
        flat[position:position + run] = value
        position += run
        value = not value
    assert position == size * size, "RLE covers %d of %d pixels" % (position, size * size)
    return flat.reshape(size, size)


def generate(out, count, seed):
    subprocess.run([sys.executable, os.path.join(HERE, "independent_scenes.py"), "--count",
                    str(count), "--seed", str(seed), "--out", out], check=True)
    with open(os.path.join(out, "annotations.json")) as f:
        return json.load(f)


def run_eval(tool, model, data, *extra):
    proc = subprocess.run([tool, model, data, "--device", "cpu", "--dense-mode", "naclip",
                           *extra], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit("FAIL: umgclip-eval on %s: %s" % (data, proc.stderr.strip()))
    return json.loads(proc.stdout)


def digest(directory):
    h = hashlib.sha256()
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as f:
            h.update(name.encode() + f.read())
    return h.hexdigest()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cli", required=True)
    parser.add_argument("--eval", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--min-zero-shot", type=float, required=True)
    parser.add_argument("--min-classify", type=float, required=True)
    parser.add_argument("--min-region-top1", type=float, required=True)
    parser.add_argument("--min-pq-things", type=float, required=True)
    args = parser.parse_args()
    failures = []

    def check(ok, message):
        print(("ok: " if ok else "FAIL: ") + message)
        if not ok:
            failures.append(message)

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "scenes")
        annotations = generate(data, args.count, 0)
        again = generate(os.path.join(tmp, "again"), args.count, 0)
        check(digest(data) == digest(os.path.join(tmp, "again")) and again == annotations,
              "the same seed gives the same scenes")
        size = annotations["size"]
        records = annotations["scenes"]
        kinds = {r["background"] for r in records}
        check(kinds == {"plain", "gradient", "noise"}, "background kinds %s" % sorted(kinds))
        generator_ok = True
        for r in records:
            masks = [decode_rle(t["mask_rle"], size) for t in r["things"]]
            overlap = np.sum(masks, axis=0).max() if masks else 0
            for t, m in zip(r["things"], masks):
                x, y, w, h = t["box"]
                ys, xs = np.nonzero(m)
                generator_ok &= (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + w, y + h)
            generator_ok &= bool(masks) and overlap == 1 and r["stuff"] == []
        check(generator_ok, "every scene has things, whole and apart, boxes bound masks")

        result = run_eval(args.eval, args.model, data)
        naclip = result["modes"]["naclip"]
        print("umgclip-eval: %s" % json.dumps(result))
        check(result["zero_shot_top1"] >= args.min_zero_shot, "zero-shot top-1 %.3f >= %.3f"
              % (result["zero_shot_top1"], args.min_zero_shot))
        check(naclip["region_top1"] >= args.min_region_top1, "region-tag top-1 %.3f >= %.3f"
              % (naclip["region_top1"], args.min_region_top1))
        check(naclip["pq_things"] >= args.min_pq_things, "PQ things %.3f >= %.3f"
              % (naclip["pq_things"], args.min_pq_things))
        # joining the parts of one thing (the default thing-affinity) is what raises PQ things
        apart = run_eval(args.eval, args.model, data, "--thing-affinity", "2")["modes"]["naclip"]
        check(apart["pq_things"] < naclip["pq_things"] and apart["region_top1"]
              == naclip["region_top1"], "PQ things %.3f with parts apart < %.3f joined; region "
              "tags unchanged" % (apart["pq_things"], naclip["pq_things"]))

        # the command line, one-thing scenes against every colour-shape tag
        tags = annotations["thing_tags"]
        single = [r for r in records if len(r["things"]) == 1]
        right = 0
        for r in single:
            proc = subprocess.run([args.cli, "classify", args.model, os.path.join(data, r["file"]),
                                   "--labels", ",".join(tags), "--device", "cpu"],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit("FAIL: umgclip classify %s: %s" % (r["file"], proc.stderr))
            best = json.loads(proc.stdout)["results"][0]["label"]
            right += best == r["things"][0]["tag"]
        share = right / max(len(single), 1)
        check(len(single) >= args.count // 4, "%d one-thing scenes" % len(single))
        check(share >= args.min_classify, "umgclip classify top-1 on one-thing scenes %.3f "
              "(%d of %d) >= %.3f" % (share, right, len(single), args.min_classify))
        single_dir = os.path.join(tmp, "single")
        os.makedirs(single_dir)
        for r in single:
            shutil.copy(os.path.join(data, r["file"]), single_dir)
        with open(os.path.join(single_dir, "annotations.json"), "w") as f:
            json.dump(dict(annotations, scenes=single), f)
        single_eval = run_eval(args.eval, args.model, single_dir)["zero_shot_top1"]
        check(abs(single_eval - share) <= 0.05, "classify %.3f agrees with umgclip-eval %.3f on "
              "the one-thing scenes" % (share, single_eval))

        # void is not scored: naming the background as a stuff segment ("wall") makes
        # umgclip-eval score it, and the metrics change
        scored_dir = os.path.join(tmp, "scored")
        shutil.copytree(data, scored_dir)
        scored = dict(annotations, scenes=[])
        for r in records:
            covered = np.zeros((size, size), dtype=bool)
            for t in r["things"]:
                covered |= decode_rle(t["mask_rle"], size)
            flat = (~covered).reshape(-1).astype(np.int8)
            changes = np.nonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))[0]
            runs = np.diff(np.concatenate([[0], changes])).tolist()
            scored["scenes"].append(dict(r, stuff=[{"name": "wall", "mask_rle": runs}]))
        with open(os.path.join(scored_dir, "annotations.json"), "w") as f:
            json.dump(scored, f)
        with_wall = run_eval(args.eval, args.model, scored_dir)["modes"]["naclip"]
        check(with_wall["miou"] != naclip["miou"] and with_wall["pq_stuff"] != naclip["pq_stuff"],
              "a background annotated as wall is scored (mIoU %.4f -> %.4f, PQ stuff %.4f -> "
              "%.4f); left void it is not" % (naclip["miou"], with_wall["miou"],
                                              naclip["pq_stuff"], with_wall["pq_stuff"]))
        check(with_wall["region_top1"] == naclip["region_top1"],
              "region tags do not depend on the background annotation")
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
