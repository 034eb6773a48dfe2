#!/usr/bin/python3
"""The real-time engine through real pipelines: schedule=latest on a live source, ordered on a
file, four branches on one model, recovery from failed inferences, flushing seeks, and 50 state
cycles plus 1,000 frames under valgrind in each schedule mode. Structure is asserted, never time.

usage: test_schedule.py PART --model TINY_MODEL [--slow-model DIR] [--cycles-tool PATH]
                        [--suppressions FILE] [--schedule MODE]
PART: latest-live | ordered-file | branches | shared | recovery | gives-up | flush | valgrind
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from checks import check, finish, skip  # noqa: E402

SECOND = Gst.SECOND


def make_slow_model(path):
    """A CLIP with ViT-B/16 widths (2 vision layers): slow enough on a CPU that a 30 fps source
    sends several frames while one inference runs."""
    # complete only with its tokenizer: make_model.py writes the weights first
    if all(os.path.exists(os.path.join(path, name))
           for name in ("model.safetensors", "vocab.json", "merges.txt")):
        return True
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    subprocess.run([sys.executable, os.path.join(HERE, "reference", "make_model.py"),
                    "--preset", "b16-hf-f16", "--text-layers", "1", "--out", path], check=True)
    return True


class Run:
    """A pipeline run to the end; frames from each appsink, messages from the bus, and the
    stats of each umgclip element (read before stopping)."""

    def __init__(self, description, sinks=("sink",), elements=("seg",), timeout=120,
                 before_stop=None):
        self.pipeline = Gst.parse_launch(description)
        self.frames = {name: [] for name in sinks}
        self.warnings, self.errors, self.inferences = [], [], []
        for name in sinks:
            sink = self.pipeline.get_by_name(name)
            sink.set_property("emit-signals", True)
            sink.connect("new-sample", self.on_sample, name)
        bus = self.pipeline.get_bus()
        self.pipeline.set_state(Gst.State.PLAYING)
        self.ended = False
        while True:
            message = bus.timed_pop_filtered(timeout * SECOND, Gst.MessageType.EOS
                                             | Gst.MessageType.ERROR | Gst.MessageType.WARNING
                                             | Gst.MessageType.ELEMENT)
            if message is None:
                break
            if message.type == Gst.MessageType.EOS:
                self.ended = True
                break
            if message.type == Gst.MessageType.ERROR:
                self.errors.append((message.src.get_name(), message.parse_error()[0].message))
                break
            if message.type == Gst.MessageType.WARNING:
                self.warnings.append((message.src.get_name(), message.parse_warning()[0].message))
                continue
            structure = message.get_structure()
            if structure is not None and structure.get_name() == "umgclip-inference":
                self.inferences.append((message.src.get_name(),
                                        structure.get_value("inference-time")))
        if before_stop is not None:
            before_stop(self)
        self.stats = {}
        for name in elements:
            structure = self.pipeline.get_by_name(name).get_property("stats")
            self.stats[name] = {structure.nth_field_name(i):
                                structure.get_value(structure.nth_field_name(i))
                                for i in range(structure.n_fields())}
        self.pipeline.set_state(Gst.State.NULL)

    def on_sample(self, sink, name):
        sample = sink.emit("pull-sample")
        buffer = sample.get_buffer()
        frame = {"pts": buffer.pts, "source_pts": None, "class_map": None}
        custom = buffer.get_custom_meta("UmgClipSegmentation")
        if custom is not None:
            structure = custom.get_structure()
            frame["source_pts"] = structure.get_value("source-pts")
            class_map = structure.get_value("class-map")
            ok, info = class_map.map(Gst.MapFlags.READ)
            frame["class_map"] = bytes(info.data)
            class_map.unmap(info)
        self.frames[name].append(frame)
        return Gst.FlowReturn.OK


def seg(name, args, extra="", model=None):
    return ("umgclipseg name=%s model=%s device=cpu labels=sky,grass,person,car "
            "stuff-labels=sky,grass threshold=0 %s" % (name, model or args.model, extra))


def assert_pts_complete(what, frames, n, fps=None, reference=None):
    """n frames, in pts order, none missing: the source's pts (every 1/fps), or those of a
    reference run without the element."""
    pts = [f["pts"] for f in frames]
    # a live source starts at the running time it started at
    start = pts[0] if pts else 0
    want = reference if reference is not None else [start + Gst.util_uint64_scale(i, SECOND, fps)
                                                    for i in range(n)]
    check("%s: %d frames out" % (what, n), len(pts) == n, len(pts))
    check("%s: pts in order, none missing" % what, pts == want, (pts[:8], want[:8]))


def part_latest_live(args):
    if not make_slow_model(args.slow_model):
        skip("latest-live", "python3-torch is needed to make the ViT-B/16-width model")
        finish()
    n, fps = 45, 30
    for schedule in ["latest", "auto"]:
        what = "schedule=%s, live" % schedule
        run = Run("videotestsrc is-live=true num-buffers=%d pattern=ball ! "
                  "video/x-raw,format=NV12,width=320,height=240,framerate=%d/1 ! %s ! "
                  "appsink name=sink sync=false"
                  % (n, fps, seg("seg", args, "schedule=%s input-size=320" % schedule,
                                 args.slow_model)))
        check("%s: ends without error" % what, run.ended and not run.errors, run.errors)
        frames = run.frames["sink"]
        stats = run.stats["seg"]
        assert_pts_complete(what, frames, n, fps)
        check("%s: runs as latest" % what, stats["schedule"] == "latest", stats)
        with_result = [f for f in frames if f["source_pts"] is not None]
        first = next((i for i, f in enumerate(frames) if f["source_pts"] is not None), None)
        check("%s: results arrive" % what, first is not None and len(with_result) > 0, stats)
        if first is None:
            continue
        check("%s: every frame after the first result carries one" % what,
              all(f["source_pts"] is not None for f in frames[first:]),
              [f["source_pts"] for f in frames[first:]])
        check("%s: a result is never newer than its frame (source-pts <= pts)" % what,
              all(f["source_pts"] <= f["pts"] for f in with_result))
        older = [f for f in with_result if f["source_pts"] < f["pts"]]
        # frames went on while an inference ran: they carry an older frame's result, and the
        # frames that came while it was busy were not queued for inference
        check("%s: frames pass while an inference is in flight (%d carry an older result, "
              "%d skipped busy)" % (what, len(older), stats["skipped-busy"]),
              len(older) > 0 and stats["skipped-busy"] > 0, stats)
        check("%s: stats count every frame" % what,
              stats["frames"] == n
              and stats["inferences"] + stats["errors"] + stats["skipped-busy"]
              + stats["skipped-interval"] + stats["skipped-qos"] <= n, stats)


def latency_of(run):
    """The LATENCY query as it leaves the element (the sinks do not ask upstream with
    sync=false): upstream's latency plus what the element adds."""
    query = Gst.Query.new_latency()
    ok = run.pipeline.get_by_name("seg").get_static_pad("src").query(query)
    run.latency = query.parse_latency() if ok else None


def make_file(path, n, width=160, height=120):
    code = subprocess.run(["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=%d" % n,
                           "pattern=ball", "!", "video/x-raw,format=I420,width=%d,height=%d,"
                           "framerate=30/1" % (width, height), "!", "matroskamux", "!",
                           "filesink", "location=%s" % path]).returncode
    return code == 0


def part_ordered_file(args, tmp):
    path = os.path.join(tmp, "clip.mkv")
    n = 24
    check("a Matroska file of %d raw frames is written" % n, make_file(path, n))
    reference = Run("filesrc location=%s ! matroskademux ! appsink name=sink sync=false" % path,
                    elements=[])
    reference_pts = [f["pts"] for f in reference.frames["sink"]]
    for schedule in ["ordered", "auto"]:
        what = "schedule=%s, file" % schedule
        run = Run("filesrc location=%s ! matroskademux ! %s ! appsink name=sink sync=false"
                  % (path, seg("seg", args, "schedule=%s nireq=4" % schedule)),
                  before_stop=latency_of)
        frames = run.frames["sink"]
        stats = run.stats["seg"]
        check("%s: ends without error" % what, run.ended and not run.errors, run.errors)
        check("%s: runs as ordered" % what, stats["schedule"] == "ordered", stats)
        assert_pts_complete(what, frames, n, reference=reference_pts)
        check("%s: every frame carries its own result (source-pts == pts)" % what,
              all(f["source_pts"] == f["pts"] for f in frames),
              [(f["pts"], f["source_pts"]) for f in frames][:6])
        check("%s: one inference per frame" % what, stats["inferences"] == n, stats)
        longest = max(t for _, t in run.inferences) if run.inferences else None
        check("%s: the LATENCY query reports at least one inference time (%s >= %s ns)"
              % (what, run.latency, longest),
              run.latency is not None and longest is not None and run.latency[1] >= longest)


def part_branches(args, tmp):
    """Four umgclipseg branches on one model give the frames the results four separate runs
    give, and the worker ran some of their frames in one batched pass."""
    n = 16
    source = ("videotestsrc num-buffers=%d pattern=ball ! "
              "video/x-raw,format=NV12,width=96,height=64,framerate=30/1" % n)
    names = ["s%d" % i for i in range(4)]
    # each branch sees the frame its own way: mode, stuff labels and mask size differ
    extras = ["mode=semantic mask-size=48", "mode=panoptic mask-size=48",
              "mode=semantic mask-size=32 dense-mode=naclip", "mode=panoptic mask-size=24"]
    branches = " ".join("t. ! queue ! %s ! appsink name=a%d sync=false"
                        % (seg(names[i], args, "schedule=ordered " + extras[i]), i)
                        for i in range(4))
    together = Run("%s ! tee name=t %s" % (source, branches),
                   sinks=["a%d" % i for i in range(4)], elements=names)
    check("4 branches: end without error", together.ended and not together.errors,
          together.errors)
    batches = sum(s["batches"] for s in together.stats.values())
    mean = sum(s["mean-batch"] * s["batches"] for s in together.stats.values()) / max(batches, 1)
    check("4 branches: the worker batched frames of several elements (mean batch %.2f)" % mean,
          mean > 1.0, together.stats)
    check("4 branches: all four use one loaded model",
          all(s["shared-by"] == 4 for s in together.stats.values()), together.stats)
    for i in range(4):
        alone = Run("%s ! %s ! appsink name=a%d sync=false"
                    % (source, seg(names[i], args, "schedule=ordered " + extras[i]), i),
                    sinks=["a%d" % i], elements=[names[i]])
        check("branch %d alone: %d frames" % (i, n), len(alone.frames["a%d" % i]) == n)
        same = [a["class_map"] == b["class_map"] and a["class_map"] is not None
                for a, b in zip(together.frames["a%d" % i], alone.frames["a%d" % i])]
        check("branch %d: every frame's class map equals the separate run's, byte for byte" % i,
              len(same) == n and all(same), same)


def part_shared(args, tmp):
    """Elements naming one model directory on one physical device share one loaded model
    however they spell the device (lavapipe: vulkan and vulkan:0); another device, another
    model."""
    run = Run("videotestsrc num-buffers=4 ! video/x-raw,format=RGBx,width=64,height=48 ! "
              "umgclipenc name=a model={m} device=vulkan ! "
              "umgclipseg name=b model={m} device=vulkan:0 labels=sky,car ! "
              "umgcliptag name=c model={m} device=cpu labels=sky,car ! "
              "appsink name=sink sync=false".format(m=args.model), elements=["a", "b", "c"])
    check("shared: the pipeline ends without error", run.ended and not run.errors, run.errors)
    shared = {name: s["shared-by"] for name, s in run.stats.items()}
    check("shared: device=vulkan and device=vulkan:0 share one model, device=cpu has its own",
          shared == {"a": 2, "b": 2, "c": 1}, shared)


def part_recovery(args, tmp):
    """UMGCLIP_FAIL_RUNS=3 (meson): one backend run fails; the element warns, names itself,
    reloads the model, runs the failed frames again, and the stream ends normally with every
    frame carrying its own result."""
    assert os.environ.get("UMGCLIP_FAIL_RUNS") == "3"
    n = 30
    run = Run("videotestsrc num-buffers=%d ! video/x-raw,format=RGBx,width=64,height=48,"
              "framerate=30/1 ! %s ! appsink name=sink sync=false"
              % (n, seg("seg", args, "schedule=ordered nireq=1")))
    frames = run.frames["sink"]
    stats = run.stats["seg"]
    check("recovery: the stream ends normally", run.ended and not run.errors, run.errors)
    check("recovery: %d frames out" % n, len(frames) == n, len(frames))
    check("recovery: a warning names the element and the failure",
          any(src == "seg" and "UMGCLIP_FAIL_RUNS" in text for src, text in run.warnings),
          run.warnings)
    own = [f["source_pts"] == f["pts"] for f in frames]
    check("recovery: every frame, the failed ones too, has its own result",
          len(own) == n and all(own), [i for i, ok in enumerate(own) if not ok])
    # the failed pass held one frame, or two when a frame waited behind it (nireq=1)
    check("recovery: stats count the failed pass's frames as errors, each recovered",
          1 <= stats["errors"] <= 2 and stats["recoveries"] == stats["errors"]
          and stats["inferences"] == n, stats)
    check("recovery: one warning per recovered frame",
          sum(1 for src, text in run.warnings if src == "seg" and "UMGCLIP_FAIL_RUNS" in text)
          == stats["errors"], run.warnings)


def part_gives_up(args, tmp):
    """UMGCLIP_FAIL_RUNS=1- (meson): every run fails; after max-errors failures in a row the
    pipeline ends with an error that names the element."""
    assert os.environ.get("UMGCLIP_FAIL_RUNS") == "1-"
    run = Run("videotestsrc num-buffers=30 ! video/x-raw,format=RGBx,width=64,height=48 ! "
              "umgclipenc name=enc model=%s device=cpu schedule=ordered nireq=1 max-errors=3 ! "
              "appsink name=sink sync=false" % args.model, elements=["enc"])
    check("gives up: the pipeline ends with an error from the element",
          not run.ended and len(run.errors) == 1 and run.errors[0][0] == "enc", run.errors)
    check("gives up: the error says how many failures and why",
          run.errors and "3 times in a row" in run.errors[0][1]
          and "UMGCLIP_FAIL_RUNS" in run.errors[0][1], run.errors)
    check("gives up: a warning for each failure before",
          sum(1 for src, _ in run.warnings if src == "enc") == 3, run.warnings)


def part_flush(args, tmp):
    """A flushing seek while frames wait for inference: they are dropped, none is pushed
    after the flush, and frames after the seek carry their own results."""
    path = os.path.join(tmp, "clip.mkv")
    n = 60
    check("a Matroska file is written", make_file(path, n))
    pipeline = Gst.parse_launch("filesrc location=%s ! matroskademux ! %s ! "
                                "appsink name=sink sync=false max-buffers=2"
                                % (path, seg("seg", args, "schedule=ordered nireq=8")))
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PAUSED)
    pipeline.get_state(30 * SECOND)
    pipeline.set_state(Gst.State.PLAYING)
    before = [sink.emit("try-pull-sample", 10 * SECOND) for _ in range(5)]
    check("flush: frames before the seek", all(s is not None for s in before))
    ok = pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.ACCURATE,
                              SECOND)
    check("flush: the flushing seek is accepted", ok)
    after = []
    while True:
        sample = sink.emit("try-pull-sample", 20 * SECOND)
        if sample is None:
            break
        buffer = sample.get_buffer()
        custom = buffer.get_custom_meta("UmgClipSegmentation")
        after.append((buffer.pts, custom.get_structure().get_value("source-pts")
                      if custom is not None else None))
    stats = {}
    structure = pipeline.get_by_name("seg").get_property("stats")
    for i in range(structure.n_fields()):
        stats[structure.nth_field_name(i)] = structure.get_value(structure.nth_field_name(i))
    pipeline.set_state(Gst.State.NULL)
    check("flush: every frame after the seek is at or after it", after
          and all(pts >= SECOND - SECOND // 30 for pts, _ in after), after[:5])
    check("flush: frames after the seek carry their own results",
          after and all(source == pts for pts, source in after), after[:5])
    check("flush: nothing waits when it ends", stats.get("pending") == 0, stats)


def part_valgrind(args, tmp):
    """50 NULL -> PLAYING -> NULL cycles and a 1,000-frame run of enc ! seg ! tag in one
    schedule mode, under valgrind: no definite leak, no memory error, and no thread of ours
    left (the tool counts them)."""
    if shutil.which("valgrind") is None:
        skip("valgrind", "valgrind not installed")
        finish()
    command = ["valgrind", "--leak-check=full", "--show-leak-kinds=definite",
               "--errors-for-leak-kinds=definite", "--num-callers=40"]
    if args.suppressions and os.path.exists(args.suppressions):
        command.append("--suppressions=" + args.suppressions)
    command += [args.cycles_tool, args.model, args.schedule, "50", "1000"]
    env = dict(os.environ, GST_DEBUG="0", G_SLICE="always-malloc")
    try:
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1500)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired:
        code, out, err = None, "", "timed out"
    what = "schedule=%s" % args.schedule
    check("%s: 50 cycles and 1,000 frames under valgrind exit 0" % what, code == 0,
          "exit %s: %s %s" % (code, out[-1500:], err[-1500:]))
    for line in out.splitlines():
        print("  " + line)
    check("%s: every cycle and the long run ended with all their frames" % what,
          "cycles 50/50" in out and "frames 1000/1000" in out, out[-800:])
    check("%s: no umgclip thread left" % what, "threads left 0" in out, out[-800:])
    match = re.search(r"definitely lost: ([\d,]+) bytes", err)
    lost = int(match.group(1).replace(",", "")) if match else 0
    leaks = "\n".join(block for block in err.split("\n\n") if "definitely lost in" in block)
    check("%s: valgrind: definitely lost = 0" % what,
          ("definitely lost" in err or "no leaks are possible" in err
           or "All heap blocks were freed" in err) and lost == 0, leaks[-4000:])
    match = re.search(r"ERROR SUMMARY: ([\d,]+) errors", err)
    check("%s: valgrind: no memory errors" % what, match is not None and match.group(1) == "0",
          "\n".join(line for line in err.splitlines()
                    if re.search(r"Invalid|uninitialised|Mismatched|at 0x|by 0x", line))[-4000:])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["latest-live", "ordered-file", "branches", "shared",
                                         "recovery",
                                         "gives-up", "flush", "valgrind"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--slow-model")
    parser.add_argument("--cycles-tool")
    parser.add_argument("--suppressions")
    parser.add_argument("--schedule", default="ordered")
    args = parser.parse_args()
    Gst.init(None)
    if Gst.ElementFactory.find("umgclipseg") is None:
        skip(args.part, "umgclipseg is not registered (GST_PLUGIN_PATH)")
        finish()
    with tempfile.TemporaryDirectory() as tmp:
        if args.part == "latest-live":
            part_latest_live(args)
        else:
            {"ordered-file": part_ordered_file, "branches": part_branches, "shared": part_shared,
             "recovery": part_recovery, "gives-up": part_gives_up, "flush": part_flush,
             "valgrind": part_valgrind}[args.part](args, tmp)
    finish()


if __name__ == "__main__":
    main()
