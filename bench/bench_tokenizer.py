#!/usr/bin/python3
"""Times `umgclip tokenize` on one long random word (10^4, 3x10^4 and 10^5 letters), the case
where a BPE that rescans the word per merge took minutes (docs/RELIABILITY.md). The test
/tokenizer/long-word asserts the tokens; this records the time (docs/PERFORMANCE.md).

usage: bench_tokenizer.py UMGCLIP_TOOL MODEL_DIR
"""
import random
import subprocess
import sys
import time


def main():
    tool, model = sys.argv[1], sys.argv[2]
    rng = random.Random(1)
    for letters in (10000, 30000, 100000):
        word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(letters))
        start = time.monotonic()
        result = subprocess.run([tool, "tokenize", model, word], capture_output=True, text=True)
        elapsed = time.monotonic() - start
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            return 1
        print("%6d letters: %.2f s" % (letters, elapsed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
