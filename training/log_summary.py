#!/usr/bin/python3
# Summarises a training log (train.py's JSON lines): mean of every loss part over windows of
# steps, so that runs can be compared by a command rather than by hand.
"""Mean losses of a train.py log over windows of steps.

  log_summary.py LOG [LOG...] [--window 50] [--steps A-B,...] [--json]

Without --steps the log is cut into consecutive windows of --window steps (the last one may
be shorter). --steps names the windows itself: "200-249" (both ends included), "last50"
(the last 50 steps of the log), "stage2" (every step of stage 2). Each row gives the window,
how many steps it holds, the mean of every logged part (loss, image, region, pixel,
segmentation, words) and the seconds the run had taken at its last step.
"""

import argparse
import json
import sys

PARTS = ["loss", "image", "region", "pixel", "segmentation", "words"]


def read_log(path):
    """(header, step records) of a train.py log; names the file and line at fault."""
    header, rows = None, []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as e:
                raise ValueError("%s:%d: not a JSON line (%s)" % (path, number, e)) from None
            if header is None and "args" in record:
                header = record
            elif "step" in record:
                rows.append(record)
            else:
                raise ValueError("%s:%d: neither a header nor a step record" % (path, number))
    if not rows:
        raise ValueError("%s: no step records" % path)
    return header, rows


def windows(rows, spec, size):
    """[(name, records)] for a --steps spec, or consecutive windows of size steps."""
    if not spec:
        return [("%d-%d" % (rows[i]["step"], rows[min(i + size, len(rows)) - 1]["step"]),
                 rows[i:i + size]) for i in range(0, len(rows), size)]
    out = []
    for item in spec.split(","):
        item = item.strip()
        if item.startswith("last") and item[4:].isdigit() and int(item[4:]) > 0:
            picked = rows[-int(item[4:]):]
        elif item == "stage2":
            picked = [r for r in rows if r.get("stage") == 2]
        else:
            first, sep, last = item.partition("-")
            if not (sep and first.isdigit() and last.isdigit() and int(first) <= int(last)):
                raise ValueError("--steps %r: want A-B (A <= B), lastN or stage2" % item)
            picked = [r for r in rows if int(first) <= r["step"] <= int(last)]
        if not picked:
            raise ValueError("--steps %r: no steps of the log fall in it" % item)
        out.append((item, picked))
    return out


def summarise(records):
    row = {"steps": len(records), "seconds": records[-1].get("seconds")}
    for part in PARTS:
        values = [r[part] for r in records if part in r]
        if values:
            row[part] = sum(values) / len(values)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs", nargs="+")
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--steps", help="windows: A-B, lastN or stage2, separated by commas")
    parser.add_argument("--json", action="store_true", help="one JSON object per log")
    args = parser.parse_args(argv)
    if args.window < 1:
        parser.error("--window must be >= 1")
    results = []
    try:
        for path in args.logs:
            _, rows = read_log(path)
            results.append({"log": path, "windows": [dict(summarise(r), window=name)
                                                     for name, r in windows(rows, args.steps,
                                                                            args.window)]})
    except (OSError, ValueError) as e:
        print("log_summary.py: %s" % e, file=sys.stderr)
        return 1
    for result in results:
        if args.json:
            print(json.dumps(result))
            continue
        print(result["log"])
        present = [p for p in PARTS if any(p in w for w in result["windows"])]
        print("  %-11s %5s %8s " % ("steps", "n", "seconds") +
              " ".join("%12s" % p for p in present))
        for w in result["windows"]:
            print("  %-11s %5d %8s " % (w["window"], w["steps"], w["seconds"]) +
                  " ".join("%12s" % ("%.4f" % w[p] if p in w else "-") for p in present))
    return 0


if __name__ == "__main__":
    sys.exit(main())
