#!/usr/bin/python3
"""umgclip-eval: one JSON object of metrics for a scene set written by training/scenes.py,
consistent across dense-mode selections, and for bad input a non-zero exit with a message
naming the file or value at fault and nothing on stdout.

usage: test_eval_tool.py UMGCLIP_EVAL MODEL_DIR DEVICE
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import numpy as np
except ImportError as error:  # scenes.py needs it
    print("SKIP: numpy is missing for %s: %s" % (sys.executable, error))
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
SCENES = os.path.join(HERE, "..", "training", "scenes.py")
sys.path.insert(0, os.path.dirname(SCENES))
import scenes  # noqa: E402
from checks import check, finish  # noqa: E402
EVAL, MODEL, DEVICE = sys.argv[1:4]
MODES = ["naclip", "clearclip", "sclip", "maskclip"]
METRICS = ["region_top1", "miou", "pq", "pq_things", "pq_stuff", "pq_things_any_label"]


def run(*args):
    proc = subprocess.run([EVAL, *args], capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def fails(name, fragment, *args):
    code, out, err = run(*args)
    check(name, code != 0 and fragment in err and out == "",
          "exit %d, stderr %r" % (code, err.strip()))


def copy_with(source, target, change):
    """A copy of the scene directory whose annotations.json went through change(dict)."""
    shutil.copytree(source, target)
    path = os.path.join(target, "annotations.json")
    with open(path) as f:
        data = json.load(f)
    change(data)
    with open(path, "w") as f:
        json.dump(data, f)
    return target


def check_result(result, n_scenes):
    check("scene count", result["scenes"] == n_scenes, result["scenes"])
    check("labels: 48 thing tags and 5 stuff names", result["labels"] == 53, result["labels"])
    check("every mode reported", sorted(result["modes"]) == sorted(MODES), result["modes"])
    values = [result["zero_shot_top1"], result["retrieval_r1"]]
    values += [m[k] for m in result["modes"].values() for k in METRICS]
    check("metrics within 0..1", all(0.0 <= v <= 1.0 for v in values), values)
    check("the device is the one asked for", DEVICE in result["device"], result["device"])


def main():
    tmp = tempfile.mkdtemp(prefix="umgclip-eval-")
    data = os.path.join(tmp, "scenes")
    subprocess.run(["/usr/bin/python3", SCENES, "--split", "heldout", "--count", "6", "--seed",
                    "3", "--out", data], check=True)

    code, out, err = run(MODEL, data, "--device", DEVICE)
    check("all modes exit 0", code == 0, err)
    result = json.loads(out)
    check_result(result, 6)
    code, out, err = run(MODEL, data, "--device", DEVICE, "--dense-mode", "sclip")
    single = json.loads(out)
    check("one mode alone", code == 0 and list(single["modes"]) == ["sclip"], out)
    check("one mode alone gives that mode's numbers",
          single["modes"]["sclip"] == result["modes"]["sclip"], (single, result))
    check("image-level metrics do not depend on the modes asked for",
          (single["zero_shot_top1"], single["retrieval_r1"])
          == (result["zero_shot_top1"], result["retrieval_r1"]))
    code, out, err = run(MODEL, data, "--device", DEVICE, "--dense-mode", "naclip",
                         "--min-area", "4096")
    huge = json.loads(out)["modes"]["naclip"]
    check("a min-area above the image drops every segment: PQ 0", huge["pq"] == 0.0, huge)
    check("min-area leaves semantic mIoU alone",
          huge["miou"] == result["modes"]["naclip"]["miou"], huge)

    # bad input: an error naming the fault, nothing on stdout
    fails("missing arguments", "DATA_DIR", MODEL)
    fails("missing data directory", "/nonexistent/scenes", MODEL, "/nonexistent/scenes")
    fails("missing model", "/nonexistent/model", "/nonexistent/model", data)
    fails("unknown dense mode", "fancy", MODEL, data, "--dense-mode", "fancy")
    fails("bad min-area", "--min-area", MODEL, data, "--min-area", "-3")
    fails("bad thing-affinity", "--thing-affinity: 'x' is not a number", MODEL, data,
          "--thing-affinity", "x")
    fails("unknown option", "--frobnicate", MODEL, data, "--frobnicate", "1")
    fails("unknown device", "gpu7", MODEL, data, "--device", "gpu7")

    def drop_tags(d):
        del d["thing_tags"]

    def unknown_tag(d):
        d["scenes"][1]["things"][0]["tag"] = "plaid hexagon"

    def short_mask(d):
        d["scenes"][2]["stuff"][0]["mask_rle"][-1] -= 1

    def no_scenes(d):
        d["scenes"] = []

    def missing_png(d):
        d["scenes"][4]["file"] = "gone.png"

    cases = [("no thing_tags", drop_tags, "thing_tags"),
             ("a tag outside the vocabulary", unknown_tag, "scene 1"),
             ("a mask of the wrong length", short_mask, "scene 2"),
             ("no scenes", no_scenes, "scenes"),
             ("a missing image", missing_png, "gone.png")]
    for i, (name, change, fragment) in enumerate(cases):
        broken = copy_with(data, os.path.join(tmp, "broken%d" % i), change)
        fails(name, fragment, MODEL, broken, "--device", DEVICE)
    small = os.path.join(tmp, "small-image")
    shutil.copytree(data, small)
    scenes.write_png(os.path.join(small, "heldout-000005.png"), np.zeros((32, 32, 3), np.uint8))
    fails("an image of another size than the annotations", "heldout-000005.png: 32x32", MODEL,
          small)
    not_json = os.path.join(tmp, "broken-json")
    shutil.copytree(data, not_json)
    with open(os.path.join(not_json, "annotations.json"), "w") as f:
        f.write("{ not json")
    fails("annotations that are not JSON", "annotations.json", MODEL, not_json)

    shutil.rmtree(tmp)
    finish()


if __name__ == "__main__":
    main()
