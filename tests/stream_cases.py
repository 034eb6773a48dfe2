#!/usr/bin/python3
"""Malformed streams, one case per run, for tests/test_streams.py: a pipeline fed by appsrc (or a
live videotestsrc) gets bad input mid-stream. Prints one JSON report on its last line: the bus
messages (type, element, text), whether EOS came, the JSON lines written and the elements'
stats; the caller asserts on it. A crash shows as a signal, a hang as a timeout, in the caller.

usage: stream_cases.py CASE --model DIR --device cpu|vulkan --tmp DIR
CASE: truncated | zero-caps | roi-outside | labels-file | model-removed
"""
import argparse
import json
import os
import shutil
import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import Gst, GstVideo  # noqa: E402

WIDTH, HEIGHT = 64, 48
FRAME_NS = Gst.SECOND // 30


class Run:
    """A pipeline and what its bus said."""

    def __init__(self, description):
        self.pipeline = Gst.parse_launch(description)
        self.bus = self.pipeline.get_bus()
        self.messages = []
        self.eos = False

    def element(self, name):
        return self.pipeline.get_by_name(name)

    def poll(self, timeout_s, until_eos=True):
        """Collects errors, warnings and infos until EOS or an error (or timeout_s)."""
        deadline = time.monotonic() + timeout_s
        kinds = (Gst.MessageType.EOS | Gst.MessageType.ERROR | Gst.MessageType.WARNING
                 | Gst.MessageType.INFO)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            message = self.bus.timed_pop_filtered(int(left * Gst.SECOND), kinds)
            if message is None:
                return
            if message.type == Gst.MessageType.EOS:
                self.eos = True
                return
            if message.type == Gst.MessageType.ERROR:
                error, debug = message.parse_error()
            elif message.type == Gst.MessageType.WARNING:
                error, debug = message.parse_warning()
            else:
                error, debug = message.parse_info()
            self.messages.append({"type": Gst.MessageType.get_name(message.type),
                                  "element": message.src.get_name(), "text": error.message,
                                  "debug": debug or ""})
            if message.type == Gst.MessageType.ERROR:
                return

    def stats(self, name):
        element = self.element(name)
        structure = element.get_property("stats") if element else None
        if structure is None:
            return {}
        return {structure.nth_field_name(i): structure.get_value(structure.nth_field_name(i))
                for i in range(structure.n_fields())}


def json_lines(path):
    """The complete lines of a JSON-lines file that may still be being written."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return []
    return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]


def frame_buffer(index, size=WIDTH * HEIGHT * 4):
    buffer = Gst.Buffer.new_wrapped(bytes([(index * 37) % 256]) * size) if size else Gst.Buffer.new()
    buffer.pts = index * FRAME_NS
    buffer.duration = FRAME_NS
    return buffer


def case_truncated(args):
    """Good frames, then one of 100 bytes and one of 0 bytes where the caps say 64x48 RGBx, then
    good frames again: the analysis drops the two, the stream goes on to EOS."""
    path = os.path.join(args.tmp, "truncated.json")
    common = "model=%s device=%s schedule=%s" % (args.model, args.device, args.schedule)
    run = Run("appsrc name=src format=time caps=video/x-raw,format=RGBx,width=%d,height=%d,"
              "framerate=30/1 ! umgclipenc name=enc %s "
              "! umgclipseg name=seg mode=panoptic threshold=0 labels=a,b %s "
              "! umgcliptag name=tag inference-region=segments threshold=0 labels=a,b %s "
              "! umgclipoverlay ! umgclipjson location=%s ! fakesink"
              % (WIDTH, HEIGHT, common, common, common, path))
    run.pipeline.set_state(Gst.State.PLAYING)
    source = run.element("src")
    sizes = [WIDTH * HEIGHT * 4] * 3 + [100, 0] + [WIDTH * HEIGHT * 4] * 3
    for index, size in enumerate(sizes):
        source.emit("push-buffer", frame_buffer(index, size))
    source.emit("end-of-stream")
    run.poll(60)
    stats = run.stats("enc")
    run.pipeline.set_state(Gst.State.NULL)
    return {"messages": run.messages, "eos": run.eos, "pushed": len(sizes),
            "frames": json_lines(path), "enc_stats": stats}


def case_overlay_truncated(args):
    """The same buffers straight into umgclipoverlay, which has no analysis in front of it."""
    path = os.path.join(args.tmp, "overlay.json")
    run = Run("appsrc name=src format=time caps=video/x-raw,format=RGBx,width=%d,height=%d,"
              "framerate=30/1 ! umgclipoverlay ! umgclipjson location=%s ! fakesink"
              % (WIDTH, HEIGHT, path))
    run.pipeline.set_state(Gst.State.PLAYING)
    source = run.element("src")
    for index, size in enumerate([WIDTH * HEIGHT * 4, 100, WIDTH * HEIGHT * 4]):
        source.emit("push-buffer", frame_buffer(index, size))
    source.emit("end-of-stream")
    run.poll(30)
    run.pipeline.set_state(Gst.State.NULL)
    return {"messages": run.messages, "eos": run.eos, "frames": json_lines(path)}


def case_zero_caps(args):
    """Caps of a 0x0 frame: refused at negotiation, an error, no frame analysed."""
    path = os.path.join(args.tmp, "zero.json")
    run = Run("appsrc name=src format=time caps=video/x-raw,format=RGBx,width=0,height=0,"
              "framerate=30/1 ! umgcliptag name=tag labels=a,b model=%s device=%s "
              "! umgclipjson location=%s ! fakesink" % (args.model, args.device, path))
    run.pipeline.set_state(Gst.State.PLAYING)
    source = run.element("src")
    for index in range(3):
        source.emit("push-buffer", frame_buffer(index, 0))
    source.emit("end-of-stream")
    run.poll(30)
    run.pipeline.set_state(Gst.State.NULL)
    return {"messages": run.messages, "eos": run.eos, "frames": json_lines(path)}


# (x, y, w, h) on a 64x48 frame: inside, partly outside right and below, wholly outside, and
# one whose size wraps when added to its origin in 32 bits
ROIS = [(8, 8, 16, 16), (48, 30, 40, 40), (200, 10, 10, 10), (10, 300, 5, 5),
        (1, 1, 0xFFFFFFF0, 0xFFFFFFF0)]


def case_roi_outside(args):
    """Upstream ROIs partly or wholly outside the frame, into umgcliptag inference-region=roi-list:
    the inside and partly-inside boxes are tagged (clipped), the others skipped with a warning."""
    path = os.path.join(args.tmp, "roi-%s.json" % args.region_mode)
    run = Run("appsrc name=src format=time caps=video/x-raw,format=RGBx,width=%d,height=%d,"
              "framerate=30/1 ! umgcliptag name=tag inference-region=roi-list region-mode=%s "
              "threshold=0 labels=a,b model=%s device=%s ! umgclipoverlay "
              "! umgclipjson location=%s ! fakesink"
              % (WIDTH, HEIGHT, args.region_mode, args.model, args.device, path))
    run.pipeline.set_state(Gst.State.PLAYING)
    source = run.element("src")
    for index in range(3):
        buffer = frame_buffer(index)
        for x, y, w, h in ROIS:
            GstVideo.buffer_add_video_region_of_interest_meta(buffer, "box", x, y, w, h)
        source.emit("push-buffer", buffer)
    source.emit("end-of-stream")
    run.poll(60)
    run.pipeline.set_state(Gst.State.NULL)
    return {"messages": run.messages, "eos": run.eos, "frames": json_lines(path)}


def wait_frames(run, path, count, timeout_s):
    """Polls the bus while the JSON file grows to count lines; the lines then."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run.poll(0.2)
        if run.eos or any(m["type"] == "error" for m in run.messages):
            break
        frames = json_lines(path)
        if len(frames) >= count:
            return frames
    return json_lines(path)


def tag_labels(frame):
    return {tag["label"] for obj in frame.get("objects", []) for tag in obj.get("tags", [])}


def case_labels_file(args):
    """A live stream tagged from a labels-file that is replaced (by rename) with new labels, then
    emptied, then deleted: the new labels are used from a frame within a couple of seconds, and
    the empty and deleted versions each give a warning while the last good labels stay in use."""
    path = os.path.join(args.tmp, "labels.json")
    labels_path = os.path.join(args.tmp, "labels.txt")

    def replace(text):
        with open(labels_path + ".new", "w") as f:
            f.write(text)
        os.replace(labels_path + ".new", labels_path)

    replace("red square\ngreen grass\n")
    run = Run("videotestsrc is-live=true pattern=ball ! video/x-raw,width=%d,height=%d,"
              "framerate=30/1 ! umgcliptag name=tag inference-region=full-frame threshold=0 "
              "labels-file=%s model=%s device=%s ! umgclipjson location=%s ! fakesink sync=false"
              % (WIDTH, HEIGHT, labels_path, args.model, args.device, path))
    run.pipeline.set_state(Gst.State.PLAYING)
    phases = {}
    phases["first"] = len(wait_frames(run, path, 15, 30))
    replace("blue sky\nwhite wall\nblack road\n")
    phases["replaced"] = len(json_lines(path))
    wait_frames(run, path, phases["replaced"] + 90, 30)  # 3 s at 30 fps
    replace("")
    phases["emptied"] = len(json_lines(path))
    wait_frames(run, path, phases["emptied"] + 90, 30)
    os.unlink(labels_path)
    phases["deleted"] = len(json_lines(path))
    wait_frames(run, path, phases["deleted"] + 90, 30)
    run.pipeline.send_event(Gst.Event.new_eos())
    run.poll(30)
    run.pipeline.set_state(Gst.State.NULL)
    frames = json_lines(path)
    return {"messages": run.messages, "eos": run.eos, "phases": phases,
            "labels": [sorted(tag_labels(frame)) for frame in frames]}


def case_model_removed(args):
    """A live stream analysed with a copy of the model whose directory is deleted while playing:
    analysis goes on with the model in memory; a restart then fails, naming the directory."""
    model = os.path.join(args.tmp, "model-to-remove")
    shutil.copytree(args.model, model)
    path = os.path.join(args.tmp, "removed.json")
    run = Run("videotestsrc is-live=true pattern=ball ! video/x-raw,width=%d,height=%d,"
              "framerate=30/1 ! umgclipenc name=enc model=%s device=%s "
              "! umgcliptag name=tag inference-region=full-frame threshold=0 labels=a,b "
              "model=%s device=%s ! umgclipjson location=%s ! fakesink sync=false"
              % (WIDTH, HEIGHT, model, args.device, model, args.device, path))
    run.pipeline.set_state(Gst.State.PLAYING)
    before = len(wait_frames(run, path, 15, 30))
    shutil.rmtree(model)
    inferences_before = run.stats("tag").get("inferences", 0)
    after = len(wait_frames(run, path, before + 30, 30))
    inferences_after = run.stats("tag").get("inferences", 0)
    messages_playing = list(run.messages)
    run.pipeline.set_state(Gst.State.NULL)
    # the model is released with the last element using it: a restart loads it again
    run.messages = []
    restart = run.pipeline.set_state(Gst.State.PLAYING)
    run.poll(15)
    run.pipeline.set_state(Gst.State.NULL)
    return {"messages_playing": messages_playing, "frames_before": before, "frames_after": after,
            "inferences": [inferences_before, inferences_after], "model": model,
            "restart": restart.value_nick, "messages_restart": run.messages}


CASES = {"truncated": case_truncated, "overlay-truncated": case_overlay_truncated,
         "zero-caps": case_zero_caps, "roi-outside": case_roi_outside,
         "labels-file": case_labels_file, "model-removed": case_model_removed}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--model", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tmp", required=True)
    parser.add_argument("--schedule", default="auto")
    parser.add_argument("--region-mode", default="roi-align")
    args = parser.parse_args()
    Gst.init(None)
    report = CASES[args.case](args)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    sys.exit(main())
