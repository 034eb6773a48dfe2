#!/usr/bin/env python3
"""Where a command's CPU time goes, by op family: `perf record` (cpu-clock samples, which work
in VMs without hardware counters) and the symbols sorted into GEMM and the rest.

  perf_breakdown.py -- build/bench/bench_batch MODEL --batch 1 --iterations 10

Loading (F16 conversion, page faults, weight packing) is counted apart and left out of the
percentages, so they describe the passes. Samples in oneDNN's JIT code ("[JIT]" in perf) count
as GEMM: the backend JITs nothing else.
"""
import os
import re
import subprocess
import sys
import tempfile

# first match wins; patterns are searched in "dso symbol"
FAMILIES = [
    ("loading (not counted)", r"half_to_float|tensor_view|safetensors|clear_page|do_anonymous|"
                              r"reorder|packed_weight|simple_reorder|jit_uni_reorder|"
                              r"_prefault|exc_page_fault|umg_model|read_tensor"),
    ("GEMM (matrix products)", r"sgemm|gemm|brg|jit|JIT|dnnl|blas|\[unknown\]|//anon|"
                               r"matmul_naive"),
    ("softmax", r"softmax|expf"),
    ("layernorm", r"layernorm"),
    ("bias / activation / residual epilogue", r"epilogue|activate|erff"),
    ("add, copy, im2col, gather", r"add_range|cpu_add|cpu_copy|im2col|gather|memmove|memcpy"),
    ("preprocessing, RoI-Align, l2norm", r"read_pixel|crop_to_tensor|bilinear|roi_align|"
                                        r"add_sample|l2norm"),
    ("thread pool wait and wake", r"sched_yield|__schedule|futex|pool_run|worker_main|"
                                  r"run_tasks|cpu_relax|do_syscall|syscall|pause|"
                                  r"finish_task_switch|osq_lock|g_cond|g_mutex"),
]


def main():
    if "--" not in sys.argv:
        raise SystemExit(__doc__)
    command = sys.argv[sys.argv.index("--") + 1:]
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        env = dict(os.environ)
        subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "1999", "-o", data, "--"]
                       + command, check=True, env=env, stdout=subprocess.DEVNULL)
        report = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                                 "--sort", "dso,sym", "-g", "none", "--percent-limit", "0"],
                                check=True, capture_output=True, text=True).stdout
    totals, other, parsed = {name: 0.0 for name, _ in FAMILIES}, {}, 0.0
    for line in report.splitlines():
        match = re.match(r"\s*([\d.]+)%\s+(.+?)\s+\[.\]\s+(.*)$", line)
        if not match:
            continue
        percent, where = float(match.group(1)), match.group(2) + " " + match.group(3)
        parsed += percent
        for name, pattern in FAMILIES:
            if re.search(pattern, where):
                totals[name] += percent
                break
        else:
            other[where.strip()] = other.get(where.strip(), 0.0) + percent
    loading = totals.pop("loading (not counted)")
    passes = parsed - loading
    print("| where | share of the passes' CPU time |")
    print("|---|---:|")
    for name, percent in totals.items():
        print("| %s | %.1f %% |" % (name, 100.0 * percent / passes))
    print("| everything else | %.1f %% |" % (100.0 * sum(other.values()) / passes))
    print("\nloading: %.1f %% of all samples; largest of everything else: %s" % (
        loading, ", ".join("%s %.1f%%" % item for item in
                           sorted(other.items(), key=lambda item: -item[1])[:6])))


if __name__ == "__main__":
    main()
