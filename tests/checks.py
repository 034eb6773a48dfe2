"""Named checks for the test scripts: each prints "ok" or "FAIL" with its name, and finish()
ends the script with 1 when one failed, 77 (skipped, for meson) when a part could not run
and nothing failed, else 0. Standard library only."""
import sys

passed = failed = skipped = 0


def check(name, condition, detail=""):
    global passed, failed
    if condition:
        passed += 1
        print("ok  ", name, flush=True)
    else:
        failed += 1
        print("FAIL", name, detail, flush=True)
    return condition


def skip(name, why):
    global skipped
    skipped += 1
    print("SKIP", name + ":", why, flush=True)


def finish():
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.exit(1 if failed else 77 if skipped else 0)
