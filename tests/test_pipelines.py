#!/usr/bin/env python3
"""Pipeline tests: real gst-launch-1.0 runs of the umgclip elements, the ready pipelines in
pipelines/, RTSP in and out on 127.0.0.1, the PyGObject example, bad input, and leaks.
Standard library and json only; PyGObject runs only in child processes (the example, the
RTSP server, the state-change loop), so a missing python3-gst-1.0 skips those parts.

usage: test_pipelines.py PART --pipelines DIR --model DIR [--device cpu|vulkan]
PART: formats | scripts | rtsp | restream | python-example | bad-input | valgrind |
      state-cycles
Exit 0 when every check passed, 1 when one failed, 77 (skipped) when a part could not run
completely: an element it needs is not registered (yet), or a tool is missing.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from checks import check, finish, skip

PYTHON_GI = "/usr/bin/python3"  # Debian's interpreter, where python3-gst-1.0 lives
LABELS = ["red square", "green grass", "blue sky", "white wall", "black road"]
ANALYSIS_ELEMENTS = ["umgclipenc", "umgclipseg", "umgcliptag"]

_exists = {}


def element_exists(name):
    if name not in _exists:
        _exists[name] = subprocess.run(["gst-inspect-1.0", name],
                                       capture_output=True).returncode == 0
    return _exists[name]


def missing_elements(*names):
    return [name for name in names if not element_exists(name)]


def not_registered(missing):
    return "element(s) %s not registered by the umgclip plugin (GST_PLUGIN_PATH=%s)" % (
        ", ".join(missing), os.environ.get("GST_PLUGIN_PATH", ""))


def require_elements(part, *names):
    """Skips the whole part while an element it needs has not landed."""
    missing = missing_elements(*names)
    if missing:
        skip(part, not_registered(missing))
        finish()


def python_gi_modules(*modules):
    code = "import gi\n" + "".join("gi.require_version(%r, '1.0')\n" % m for m in modules)
    code += "from gi.repository import %s\n" % ", ".join(modules)
    return subprocess.run([PYTHON_GI, "-c", code], capture_output=True).returncode == 0


def launch(description, timeout=120, env=None, prefix=()):
    """Runs gst-launch-1.0; (exit code, stdout, stderr), exit code None when it hung."""
    argv = [*prefix, "gst-launch-1.0", *shlex.split(description)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env=env)
    except subprocess.TimeoutExpired as expired:
        return None, expired.stdout or "", expired.stderr or ""
    return proc.returncode, proc.stdout, proc.stderr


def common_props(args):
    return "model=%s device=%s" % (shlex.quote(args.model), args.device)


def quoted_labels(labels=LABELS):
    return shlex.quote(",".join(labels))


def read_json_lines(path):
    """The objects of a JSON-lines file, or (None, reason)."""
    try:
        with open(path) as f:
            lines = [line for line in f.read().splitlines() if line.strip()]
    except OSError as error:
        return None, str(error)
    try:
        return [json.loads(line) for line in lines], ""
    except ValueError as error:
        return None, "not JSON: %s" % error


def timestamp_seconds(value):
    """gvametaconvert writes nanoseconds; accept seconds as a float too."""
    return value / 1e9 if isinstance(value, int) or value > 1e6 else value


def check_frames(name, frames, n_frames, width, height, labels, fps=None, want_segments=False,
                 want_objects=False):
    """One JSON object per frame, gvametaconvert layout: resolution, timestamp, objects[]
    with detection.bounding_box (normalised), tags from the label list, segments[]."""
    if not check(name + ": %d JSON lines" % n_frames if n_frames else name + ": JSON lines",
                 frames is not None and (len(frames) == n_frames if n_frames else len(frames) > 0),
                 "got %s" % (len(frames) if frames is not None else None)):
        return
    problems = []
    previous_time = -1.0
    n_objects = n_segments = 0
    for index, frame in enumerate(frames):
        where = "frame %d: " % index
        resolution = frame.get("resolution", {})
        if (resolution.get("width"), resolution.get("height")) != (width, height):
            problems.append(where + "resolution %r, expected %dx%d" % (resolution, width, height))
        if not isinstance(frame.get("timestamp"), (int, float)):
            problems.append(where + "no numeric timestamp")
        else:
            seconds = timestamp_seconds(frame["timestamp"])
            if fps is not None and abs(seconds - index / fps) > 1e-6:
                problems.append(where + "timestamp %r, expected %g s" % (frame["timestamp"],
                                                                        index / fps))
            if seconds <= previous_time:
                problems.append(where + "timestamp %r not increasing" % frame["timestamp"])
            previous_time = seconds
        objects = frame.get("objects")
        if not isinstance(objects, list):
            problems.append(where + "no objects[] list")
            objects = []
        for obj in objects:
            detection = obj.get("detection", {})
            box = detection.get("bounding_box", {})
            coords = [box.get(k) for k in ("x_min", "y_min", "x_max", "y_max")]
            if not all(isinstance(c, (int, float)) and -1e-6 <= c <= 1 + 1e-6 for c in coords):
                problems.append(where + "bounding box %r not normalised" % box)
            elif coords[0] > coords[2] or coords[1] > coords[3]:
                problems.append(where + "bounding box %r inverted" % box)
            elif isinstance(obj.get("x"), int) and isinstance(obj.get("w"), int) and (
                    abs(coords[0] * width - obj["x"]) > 1
                    or abs(coords[2] * width - obj["x"] - obj["w"]) > 1):
                problems.append(where + "pixel box x=%r w=%r does not match %r" % (
                    obj["x"], obj["w"], box))
            label = detection.get("label")
            if label is not None and label not in labels:
                problems.append(where + "object label %r not among the labels" % label)
            confidence = detection.get("confidence")
            if confidence is not None and not 0 <= confidence <= 1 + 1e-6:
                problems.append(where + "confidence %r out of [0, 1]" % confidence)
            tags = obj.get("tags")
            if want_objects and not tags:
                problems.append(where + "object without tags: %r" % obj)
            if tags:
                names = [t.get("label") for t in tags]
                scores = [t.get("score", t.get("confidence")) for t in tags]
                if any(n not in labels for n in names):
                    problems.append(where + "tags %r not among the labels" % names)
                if scores != sorted(scores, reverse=True):
                    problems.append(where + "tags not ranked best first: %r" % tags)
        n_objects += len(objects)
        segments = frame.get("segments")
        if want_segments:
            if not isinstance(segments, list):
                problems.append(where + "no segments[] list")
                segments = []
            for segment in segments:
                if segment.get("label") not in labels:
                    problems.append(where + "segment label %r not among the labels"
                                    % segment.get("label"))
            n_segments += len(segments)
    if want_segments and n_segments == 0:
        problems.append("no frame has a segment")
    if want_objects and n_objects == 0:
        problems.append("no frame has an object")
    check(name + ": content", not problems, "; ".join(problems[:5]))


# ---- parts ----

FORMATS = [("RGB", 65, 49), ("RGBA", 64, 48), ("RGBx", 80, 45), ("BGRx", 96, 54),
           ("BGRA", 33, 31), ("NV12", 64, 36), ("I420", 50, 38)]


def part_formats(args, tmp):
    """Every input format through the whole chain, at awkward sizes."""
    require_elements("formats", *ANALYSIS_ELEMENTS, "umgclipoverlay", "umgclipjson")
    n_frames, fps = 6, 30
    for video_format, width, height in FORMATS:
        json_path = os.path.join(tmp, "%s.json" % video_format)
        code, out, err = launch(
            "videotestsrc num-buffers=%d pattern=smpte "
            "! video/x-raw,format=%s,width=%d,height=%d,framerate=%d/1 "
            "! umgclipenc %s "
            "! umgclipseg mode=panoptic threshold=0 labels=%s %s "
            "! umgcliptag inference-region=segments threshold=0 labels=%s %s "
            "! umgclipoverlay ! umgclipjson location=%s ! fakesink"
            % (n_frames, video_format, width, height, fps, common_props(args),
               quoted_labels(), common_props(args), quoted_labels(), common_props(args),
               json_path))
        name = "%s %dx%d" % (video_format, width, height)
        if not check(name + ": gst-launch exits 0", code == 0, "exit %s: %s" % (code, err[-800:])):
            continue
        frames, why = read_json_lines(json_path)
        check_frames(name, frames if frames is not None else None, n_frames, width, height,
                     LABELS, fps=fps, want_segments=True, want_objects=True)
        if frames is None:
            print("     ", why)


    # The same picture in every format: the RGB-family formats carry identical pixels, so
    # embeddings and segments must match. NV12 and I420 carry the same subsampled picture as
    # each other, and the elements' YUV -> RGB must agree with videoconvert's.
    results = {}
    conversions = [(f, "video/x-raw,format=%s" % f) for f, _, _ in FORMATS]
    conversions.append(("I420>RGB", "video/x-raw,format=I420 ! videoconvert "
                        "! video/x-raw,format=RGB"))
    for name, caps in conversions:
        json_path = os.path.join(tmp, "same-%s.json" % name)
        code, _, err = launch(
            "videotestsrc num-buffers=2 pattern=colors ! video/x-raw,width=64,height=48 "
            "! videoconvert ! %s "
            "! umgclipenc %s ! umgclipseg mode=panoptic threshold=0 labels=%s %s "
            "! umgclipjson include-embedding=true location=%s ! fakesink"
            % (caps, common_props(args), quoted_labels(), common_props(args), json_path))
        frames, why = read_json_lines(json_path) if code == 0 else (None, err[-400:])
        if check("%s: same picture analysed" % name, frames is not None
                 and len(frames) == 2 and "vector" in frames[0].get("embedding", {}), why):
            results[name] = frames[0]

    def compare(name, reference_name, min_cosine, same_segments):
        if name not in results or reference_name not in results:
            return
        frame, reference = results[name], results[reference_name]
        a, b = reference["embedding"]["vector"], frame["embedding"]["vector"]
        cosine = sum(x * y for x, y in zip(a, b)) / max(
            1e-12, (sum(x * x for x in a) * sum(y * y for y in b)) ** 0.5)
        segments = [(g["label"], g["area"]) for g in frame["segments"]]
        reference_segments = [(g["label"], g["area"]) for g in reference["segments"]]
        check("%s embedding %s %s's (cosine %.7f >= %g)" % (
            name, "and segments equal" if same_segments else "close to", reference_name,
            cosine, min_cosine),
              len(a) == len(b) and cosine >= min_cosine
              and (not same_segments or segments == reference_segments),
              "segments %r vs %r" % (segments[:4], reference_segments[:4]))

    for name in ("RGBA", "RGBx", "BGRx", "BGRA"):
        compare(name, "RGB", 0.99999, True)
    compare("NV12", "I420", 0.99999, True)
    compare("I420", "I420>RGB", 0.999, False)


def part_scripts(args, tmp):
    """pipelines/*.sh are valid shell; annotate_file.sh turns a generated clip into an
    annotated, decodable video plus one JSON object per frame."""
    scripts = sorted(f for f in os.listdir(args.pipelines) if f.endswith(".sh"))
    check("pipelines/ has the four ready pipelines", len(scripts) >= 4, scripts)
    for script in scripts:
        proc = subprocess.run(["sh", "-n", os.path.join(args.pipelines, script)],
                              capture_output=True, text=True)
        check(script + " parses", proc.returncode == 0, proc.stderr)

    require_elements("annotate_file.sh", *ANALYSIS_ELEMENTS, "umgclipoverlay", "umgclipjson")
    n_frames, width, height = 12, 128, 96
    clip = os.path.join(tmp, "clip.avi")
    code, _, err = launch("videotestsrc num-buffers=%d pattern=ball "
                          "! video/x-raw,width=%d,height=%d,framerate=10/1 ! jpegenc "
                          "! avimux ! filesink location=%s" % (n_frames, width, height, clip))
    if not check("test clip written", code == 0, err[-400:]):
        return
    output, json_path = os.path.join(tmp, "annotated.mkv"), os.path.join(tmp, "annotated.json")
    env = dict(os.environ, LABELS=",".join(LABELS), STUFF_LABELS="blue sky,white wall",
               THRESHOLD="0", UMGCLIP_MODEL=args.model, UMGCLIP_DEVICE=args.device)
    try:
        proc = subprocess.run([os.path.join(args.pipelines, "annotate_file.sh"), clip, output,
                               json_path], capture_output=True, text=True, env=env, timeout=180)
        code, err = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired:
        code, err = None, "timed out"
    if not check("annotate_file.sh exits 0", code == 0, "exit %s: %s" % (code, err[-800:])):
        return
    frames, why = read_json_lines(json_path)
    check_frames("annotate_file.sh", frames, n_frames, width, height, LABELS, fps=10,
                 want_segments=True)
    # The annotated video decodes to as many frames of the same size: count them with
    # umgclipjson, which writes a line per frame even without any analysis upstream.
    recount = os.path.join(tmp, "recount.json")
    code, _, err = launch("filesrc location=%s ! decodebin ! videoconvert "
                          "! video/x-raw,format=I420 ! umgclipjson location=%s ! fakesink"
                          % (output, recount))
    frames, why = read_json_lines(recount) if code == 0 else (None, err[-400:])
    check("annotated video decodes to %d frames of %dx%d" % (n_frames, width, height),
          frames is not None and len(frames) == n_frames
          and all(f.get("resolution") == {"width": width, "height": height} for f in frames),
          why or (frames[:1] if frames else frames))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RtspServer:
    """pipelines/rtsp_restream.py on 127.0.0.1, a free port, until the with block ends."""

    def __init__(self, args, server_args):
        self.port = free_port()
        env = dict(os.environ, UMGCLIP_MODEL=args.model, UMGCLIP_DEVICE=args.device)
        self.proc = subprocess.Popen(
            [PYTHON_GI, os.path.join(args.pipelines, "rtsp_restream.py"), "--address",
             "127.0.0.1", "--port", str(self.port), "--mount", "/test", *server_args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.url = None

    def __enter__(self):
        line = self.proc.stdout.readline()  # "serving rtsp://..." once listening
        match = re.search(r"rtsp://\S+", line)
        self.url = match.group(0) if match else None
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.stderr = err


def run_rtsp_client(args, url, json_path, min_frames, timeout=90):
    """pipelines/rtsp_camera_to_json.sh against url; stopped with Ctrl-C (end of stream)
    once min_frames JSON lines arrived or the timeout passed. (exit code, stderr)."""
    env = dict(os.environ, LABELS=",".join(LABELS), UMGCLIP_MODEL=args.model,
               UMGCLIP_DEVICE=args.device, LATENCY="100", THRESHOLD="0")
    client = subprocess.Popen([os.path.join(args.pipelines, "rtsp_camera_to_json.sh"), url,
                               json_path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and client.poll() is None:
        time.sleep(0.5)
        try:
            with open(json_path) as f:
                if sum(1 for line in f if line.strip()) >= min_frames:
                    break
        except OSError:
            pass
    if client.poll() is None:
        client.send_signal(signal.SIGINT)  # gst-launch-1.0 -e: EOS, then a clean exit
    try:
        _, err = client.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        client.kill()
        _, err = client.communicate()
        return None, err
    return client.returncode, err


def part_rtsp(args, tmp, restream):
    """An RTSP server on 127.0.0.1 serving a test stream (plain, or re-streamed with the
    analysis drawn on it), analysed by the RTSP-camera pipeline into JSON."""
    part = "restream" if restream else "rtsp"
    require_elements(part, "umgcliptag", "umgclipjson",
                     *(["umgclipenc", "umgclipseg", "umgclipoverlay"] if restream else []))
    if not python_gi_modules("Gst", "GstRtspServer"):
        skip(part, "python3-gst-1.0 / gir1.2-gst-rtsp-server-1.0 not importable by "
             + PYTHON_GI)
        finish()
    width, height = 160, 120
    source = ("videotestsrc is-live=true pattern=ball "
              "! video/x-raw,width=%d,height=%d,framerate=15/1" % (width, height))
    server_args = ["--input", source, "--encoder", "jpeg", "--labels", ",".join(LABELS),
                   "--stuff-labels", "blue sky", "--threshold", "0"]
    if not restream:
        server_args += ["--analysis", "none"]
    json_path = os.path.join(tmp, part + ".json")
    with RtspServer(args, server_args) as server:
        if check(part + ": server listening", server.url is not None,
                 server.proc.stderr.read() if server.proc.poll() is not None else ""):
            code, err = run_rtsp_client(args, server.url, json_path, min_frames=10)
            check(part + ": client exits 0 after Ctrl-C", code == 0,
                  "exit %s: %s" % (code, err[-800:]))
    check(part + ": server stopped cleanly", server.proc.returncode == 0,
          "exit %s: %s" % (server.proc.returncode, server.stderr[-800:]))
    frames, why = read_json_lines(json_path)
    if not check(part + ": at least 10 frames analysed", frames is not None and len(frames) >= 10,
                 why or len(frames)):
        return
    check_frames(part, frames, 0, width, height, LABELS, want_objects=True)


def part_python_example(args, tmp):
    """pipelines/read_metadata.py reads the same tags and segments that umgclipjson writes
    for the same frames."""
    require_elements("python-example", "umgclipseg", "umgcliptag", "umgclipjson")
    if not python_gi_modules("Gst", "GstVideo", "GstApp"):
        skip("python-example", "python3-gst-1.0 not importable by " + PYTHON_GI)
        finish()
    n_frames, width, height = 5, 96, 72
    json_path = os.path.join(tmp, "example.json")
    labels = ",".join(LABELS)
    # A gst_parse_launch() fragment: double quotes, not shell quoting.
    analysis = ('umgclipseg mode=panoptic threshold=0 labels="%s" stuff-labels="%s" {common} '
                '! umgcliptag inference-region=segments threshold=0 labels="%s" {common} '
                '! umgclipjson location="%s"'
                % (labels, "blue sky,white wall", labels, json_path)).format(
                    common='model="%s" device=%s' % (args.model, args.device))
    try:
        proc = subprocess.run(
            [PYTHON_GI, os.path.join(args.pipelines, "read_metadata.py"),
             "--source", "videotestsrc num-buffers=%d pattern=smpte "
             "! video/x-raw,width=%d,height=%d,framerate=30/1" % (n_frames, width, height),
             "--analysis", analysis], capture_output=True, text=True, timeout=120)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired:
        code, out, err = None, "", "timed out"
    if not check("read_metadata.py exits 0", code == 0, "exit %s: %s" % (code, err[-800:])):
        return
    try:
        printed = [json.loads(line) for line in out.splitlines() if line.strip()]
    except ValueError as error:
        check("read_metadata.py prints JSON lines", False, error)
        return
    written, why = read_json_lines(json_path)
    if not check("one printed line and one umgclipjson line per frame",
                 len(printed) == n_frames and written is not None and len(written) == n_frames,
                 "%d printed, %s written %s" % (len(printed), len(written or []), why)):
        return

    problems = []
    n_regions = n_segments = 0
    for index, (frame, record) in enumerate(zip(printed, written)):
        where = "frame %d: " % index
        if (frame["width"], frame["height"]) != (width, height):
            problems.append(where + "size %dx%d" % (frame["width"], frame["height"]))
        regions = frame["regions"]
        if [r["id"] for r in regions] != list(range(len(regions))):
            problems.append(where + "ROI ids %r are not 0..n-1" % [r["id"] for r in regions])
        for region in regions:
            tags, scores = region.get("tags") or [None], region.get("scores") or [None]
            if region.get("label") not in LABELS or tags[0] != region["label"]:
                problems.append(where + "best tag %r / tags %r" % (region.get("label"), tags))
            elif (len(scores) != len(tags) or scores != sorted(scores, reverse=True)
                    or abs(scores[0] - region["confidence"]) > 1e-6):
                problems.append(where + "scores %r / confidence %r" % (scores,
                                                                     region.get("confidence")))
            if not (0 <= region["x"] and 0 <= region["y"] and region["w"] > 0 and region["h"] > 0
                    and region["x"] + region["w"] <= width
                    and region["y"] + region["h"] <= height):
                problems.append(where + "box %r outside the frame" % region)
        n_regions += len(regions)
        # The appsink saw the buffers umgclipjson described: same regions, same best tags.
        objects = record.get("objects", [])
        if sorted(r.get("label") for r in regions) != sorted(
                o.get("detection", {}).get("label") for o in objects):
            problems.append(where + "ROI labels %r, JSON object labels %r" % (
                [r.get("label") for r in regions],
                [o.get("detection", {}).get("label") for o in objects]))

        segmentation = frame["segmentation"]
        if segmentation is None:
            problems.append(where + "no UmgClipSegmentation custom meta")
            continue
        if segmentation["labels"] != LABELS:
            problems.append(where + "labels %r" % segmentation["labels"])
        if (segmentation["frame_width"], segmentation["frame_height"]) != (width, height):
            problems.append(where + "frame size %r" % segmentation)
        if not segmentation["has_instance_map"]:
            problems.append(where + "panoptic mode without instance-map")
        mask_pixels = segmentation["width"] * segmentation["height"]
        counts = segmentation["pixels_per_label"]
        if sum(counts.values()) != mask_pixels:
            problems.append(where + "class map has %d pixels, expected %d"
                            % (sum(counts.values()), mask_pixels))
        area_per_label = {}
        for segment in segmentation["segments"]:
            if segment["label"] not in LABELS or LABELS[segment["label_id"]] != segment["label"]:
                problems.append(where + "segment %r" % segment)
            area_per_label[segment["label"]] = (area_per_label.get(segment["label"], 0)
                                                + segment["area"])
        # A segment covers only pixels of its class, so no label has more segment area than
        # class-map pixels.
        for label, area in area_per_label.items():
            if area > counts.get(label, 0):
                problems.append(where + "segments of %r cover %d pixels, class map has %d"
                                % (label, area, counts.get(label, 0)))
        if len(segmentation["segments"]) != len(record.get("segments", [])):
            problems.append(where + "%d segments in the meta, %d in the JSON" % (
                len(segmentation["segments"]), len(record.get("segments", []))))
        n_segments += len(segmentation["segments"])
    if n_regions == 0 or n_segments == 0:
        problems.append("%d regions and %d segments in all frames" % (n_regions, n_segments))
    check("read_metadata.py output consistent with the metadata and umgclipjson",
          not problems, "; ".join(problems[:5]))


def part_bad_input(args, tmp):
    """Each bad setting ends the pipeline with an error naming it: non-zero exit, no crash
    (signal), no hang."""
    source = "videotestsrc num-buffers=3 ! video/x-raw,width=64,height=48,format=%s"
    broken_json = os.path.join(tmp, "broken-json")
    truncated = os.path.join(tmp, "truncated-weights")
    for directory in (broken_json, truncated):
        shutil.copytree(args.model, directory)
    with open(os.path.join(broken_json, "config.json"), "w") as f:
        f.write('{"vision_config": {"patch_size": ')
    weights = os.path.join(truncated, "model.safetensors")
    with open(weights, "r+b") as f:
        f.truncate(os.path.getsize(weights) // 2)
    missing_file = os.path.join(tmp, "no-such-labels.txt")
    empty_file = os.path.join(tmp, "empty-labels.txt")
    open(empty_file, "w").close()

    def fails(name, element, props, fragments, video_format="RGBx"):
        missing = missing_elements(element)
        if missing:
            skip(name, not_registered(missing))
            return
        code, out, err = launch("%s ! %s %s ! fakesink" % (source % video_format, element, props),
                                timeout=60)
        message = out + err
        named = any(fragment.lower() in message.lower() for fragment in fragments)
        check("%s (%s)" % (name, element), code is not None and code > 0 and named,
              "exit %s (None: hung, negative: crashed), output %r" % (code, message[-600:]))

    device = "device=%s" % args.device
    for element in ANALYSIS_ELEMENTS:
        labels = "labels=%s" % quoted_labels() if element != "umgclipenc" else ""
        fails("missing model directory", element,
              "model=%s %s %s" % (os.path.join(tmp, "no-such-model"), device, labels),
              ["no-such-model"])
        fails("model with broken config.json", element,
              "model=%s %s %s" % (broken_json, device, labels), ["config.json"])
        fails("model with truncated weights", element,
              "model=%s %s %s" % (truncated, device, labels), ["model.safetensors"])
        fails("unknown device", element, "model=%s device=tpu:7 %s" % (args.model, labels),
              ["tpu:7"])
        fails("missing labels-file", element,
              "model=%s %s labels-file=%s" % (args.model, device, missing_file),
              ["no-such-labels.txt"])
        fails("unsupported format YUY2", element, "model=%s %s %s" % (args.model, device, labels),
              ["YUY2", "not-negotiated", "not negotiated"], video_format="YUY2")
    for element in ("umgclipseg", "umgcliptag"):
        # Elements that rank labels cannot start without any.
        # gst-launch-1.0 needs the quotes of an empty value: labels= alone eats the "!".
        for props in ("labels='\"\"'", "labels=' , ,'", "labels-file=%s" % empty_file):
            fails("empty label list %s" % props, element,
                  "model=%s %s %s" % (args.model, device, props), ["no labels", "empty label"])


def part_valgrind(args, tmp):
    """1,000 small frames through every element under valgrind: no definite leak."""
    if shutil.which("valgrind") is None:
        skip("valgrind", "valgrind not installed")
        finish()
    elements = [e for e in ANALYSIS_ELEMENTS + ["umgclipoverlay", "umgclipjson"]
                if element_exists(e)]
    missing = missing_elements(*ANALYSIS_ELEMENTS, "umgclipoverlay", "umgclipjson")
    n_frames = 1000
    json_path = os.path.join(tmp, "valgrind.json")
    chain = {
        "umgclipenc": "umgclipenc %s" % common_props(args),
        "umgclipseg": "umgclipseg mode=panoptic threshold=0 labels=%s %s" % (quoted_labels(),
                                                                 common_props(args)),
        "umgcliptag": "umgcliptag inference-region=%s threshold=0 labels=%s %s" % (
            "segments" if "umgclipseg" in elements else "full-frame", quoted_labels(),
            common_props(args)),
        "umgclipoverlay": "umgclipoverlay",
        "umgclipjson": "umgclipjson location=%s" % json_path,
    }
    valgrind = ["valgrind", "--leak-check=full", "--show-leak-kinds=definite",
                "--errors-for-leak-kinds=definite", "--num-callers=40"]
    if args.suppressions and os.path.exists(args.suppressions):
        valgrind.append("--suppressions=" + args.suppressions)
    code, out, err = launch(
        "videotestsrc num-buffers=%d ! video/x-raw,format=I420,width=64,height=48 ! %s "
        "! fakesink" % (n_frames, " ! ".join(chain[e] for e in elements)),
        timeout=480, prefix=valgrind,
        env=dict(os.environ, GST_DEBUG="0", G_SLICE="always-malloc"))
    check("gst-launch under valgrind exits 0", code == 0, "exit %s: %s" % (code, err[-1500:]))
    match = re.search(r"definitely lost: ([\d,]+) bytes", err)
    lost = int(match.group(1).replace(",", "")) if match else 0
    summary = "definitely lost" in err or "All heap blocks were freed" in err \
        or "no leaks are possible" in err
    leaks = "\n".join(block for block in err.split("\n\n") if "definitely lost in" in block)
    check("valgrind: definitely lost = 0 (%s)" % ", ".join(elements), summary and lost == 0,
          "%d bytes\n%s" % (lost, leaks[-4000:]))
    # Invalid reads and writes, uses of uninitialised values, bad frees: any is a bug.
    match = re.search(r"ERROR SUMMARY: ([\d,]+) errors", err)
    check("valgrind: no memory errors", match is not None and match.group(1) == "0",
          "\n".join(line for line in err.splitlines()
                    if re.search(r"Invalid|uninitialised|Mismatched|at 0x|by 0x", line))[-4000:])
    if "umgclipjson" in elements:
        frames, why = read_json_lines(json_path)
        check("valgrind run analysed %d frames" % n_frames,
              frames is not None and len(frames) == n_frames, why or len(frames))
    if missing:
        skip("valgrind coverage", not_registered(missing))


STATE_CYCLES = r"""
import gc, sys
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst


def cycle_states(description, cycles):
    # In a function so that every Python reference to a GStreamer object is gone on return.
    pipeline = Gst.parse_launch(description)
    bus = pipeline.get_bus()
    for cycle in range(cycles):
        pipeline.set_state(Gst.State.PLAYING)
        inferences = 0
        while True:
            message = bus.timed_pop_filtered(20 * Gst.SECOND, Gst.MessageType.EOS
                                             | Gst.MessageType.ERROR | Gst.MessageType.ELEMENT)
            if message is None:
                return "cycle %d: no end of stream within 20 s" % cycle
            if message.type == Gst.MessageType.ERROR:
                return "cycle %d: %s" % (cycle, message.parse_error()[0].message)
            if message.type == Gst.MessageType.EOS:
                break
            structure = message.get_structure()
            if structure is not None and structure.get_name() == "umgclip-inference":
                inferences += 1
        pipeline.set_state(Gst.State.NULL)
        if inferences == 0:
            return "cycle %d: no umgclip-inference message" % cycle
    return None


Gst.init(None)
failure = cycle_states(sys.argv[1], int(sys.argv[2]))
gc.collect()
if failure:
    sys.exit(failure)
print("cycles done", flush=True)
Gst.deinit()
"""


def part_state_cycles(args, tmp):
    """NULL -> PLAYING -> NULL 50 times in one process; the leaks tracer finds no object
    alive at the end."""
    if not python_gi_modules("Gst"):
        skip("state-cycles", "python3-gst-1.0 not importable by " + PYTHON_GI)
        finish()
    elements = [e for e in ANALYSIS_ELEMENTS + ["umgclipoverlay", "umgclipjson"]
                if element_exists(e)]
    missing = missing_elements(*ANALYSIS_ELEMENTS, "umgclipoverlay", "umgclipjson")
    chain = {
        "umgclipenc": "umgclipenc %s" % common_props(args),
        "umgclipseg": "umgclipseg mode=panoptic threshold=0 labels=%s %s" % (quoted_labels(),
                                                                 common_props(args)),
        "umgcliptag": "umgcliptag inference-region=%s threshold=0 labels=%s %s" % (
            "segments" if "umgclipseg" in elements else "full-frame", quoted_labels(),
            common_props(args)),
        "umgclipoverlay": "umgclipoverlay",
        "umgclipjson": "umgclipjson location=%s" % os.path.join(tmp, "cycles.json"),
    }
    description = ("videotestsrc num-buffers=4 ! video/x-raw,format=NV12,width=64,height=48 "
                   "! %s ! fakesink sync=false" % " ! ".join(chain[e] for e in elements))
    env = dict(os.environ, GST_TRACERS="leaks", GST_DEBUG="GST_TRACER:7,leaks:7")
    try:
        proc = subprocess.run([PYTHON_GI, "-c", STATE_CYCLES, description, "50"],
                              capture_output=True, text=True, env=env, timeout=300)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired:
        code, out, err = None, "", "timed out"
    check("50 state cycles (%s) run" % ", ".join(elements), code == 0 and "cycles done" in out,
          "exit %s: %s" % (code, err[-1500:]))
    # The tracer registers its record format at start (proof that it ran), then logs one
    # object-alive record per leaked object at Gst.deinit().
    tracer_ran = "object-alive, type-name=(string)%s" in err
    alive = [line for line in err.splitlines()
             if re.search(r"object-alive, type-name=\(string\)(?!%s)", line)]
    check("leaks tracer: no object alive after the cycles",
          code == 0 and tracer_ran and "Leaks detected" not in err and not alive,
          "\n".join(alive[:20]) or err[-1500:])
    if missing:
        skip("state-cycles coverage", not_registered(missing))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["formats", "scripts", "rtsp", "restream",
                                         "python-example", "bad-input", "valgrind",
                                         "state-cycles"])
    parser.add_argument("--pipelines", required=True, help="the pipelines/ directory")
    parser.add_argument("--model", required=True, help="a small model directory")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--suppressions", default=None, help="valgrind suppressions file")
    args = parser.parse_args()
    if shutil.which("gst-launch-1.0") is None:
        skip(args.part, "gst-launch-1.0 not installed (gstreamer1.0-tools)")
        finish()
    with tempfile.TemporaryDirectory(prefix="umgclip-pipelines-") as tmp:
        if args.part == "formats":
            part_formats(args, tmp)
        elif args.part == "scripts":
            part_scripts(args, tmp)
        elif args.part in ("rtsp", "restream"):
            part_rtsp(args, tmp, restream=args.part == "restream")
        elif args.part == "python-example":
            part_python_example(args, tmp)
        elif args.part == "bad-input":
            part_bad_input(args, tmp)
        elif args.part == "valgrind":
            part_valgrind(args, tmp)
        elif args.part == "state-cycles":
            part_state_cycles(args, tmp)
    finish()


if __name__ == "__main__":
    main()
