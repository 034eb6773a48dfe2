#!/usr/bin/python3
"""Streams that go wrong while playing (docs/RELIABILITY.md): malformed input mid-stream, and an
RTSP camera that goes away and comes back. Real pipelines only; the cases that need appsrc run in
tests/stream_cases.py, one child process each, so that a crash shows as a signal here.

usage: test_streams.py PART --model DIR --pipelines DIR [--device cpu|vulkan]
PART: malformed | reconnect
Exit 0 when every check passed, 1 when one failed, 77 when the part could not run.
"""
import argparse
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time

from checks import check, finish, skip

PYTHON_GI = "/usr/bin/python3"  # Debian's interpreter, where python3-gst-1.0 lives
HERE = os.path.dirname(os.path.abspath(__file__))
LABELS_A = {"red square", "green grass"}
LABELS_B = {"blue sky", "white wall", "black road"}


def launch(description, timeout=120):
    """gst-launch-1.0; (exit code, output), exit code None when it hung."""
    try:
        proc = subprocess.run(["gst-launch-1.0", *shlex.split(description)], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        return None, str(expired.stdout or "") + str(expired.stderr or "")
    return proc.returncode, proc.stdout + proc.stderr


def read_json_lines(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return None


def run_case(args, tmp, case, *extra, timeout=120):
    """tests/stream_cases.py CASE; (exit code, report or None, stderr)."""
    argv = [PYTHON_GI, os.path.join(HERE, "stream_cases.py"), case, "--model", args.model,
            "--device", args.device, "--tmp", tmp, *extra]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, None, "hung for %d s" % timeout
    report = None
    lines = proc.stdout.strip().splitlines()
    if lines:
        try:
            report = json.loads(lines[-1])
        except ValueError:
            pass
    return proc.returncode, report, proc.stderr[-1500:]


def messages_of(report, kind, key="messages"):
    return [m for m in report.get(key, []) if m["type"] == kind]


def case_ran(name, code, report, err):
    return check(name + ": runs to its end (no crash, no hang)", code == 0 and report is not None,
                 "exit %s (None: hung, negative: signal): %s" % (code, err))


def part_malformed(args, tmp):
    model = args.model
    device = args.device
    common = "model=%s device=%s" % (shlex.quote(model), device)
    chain = ("umgclipenc %s ! umgclipseg mode=panoptic threshold=0 labels='red square,sky' %s "
             "! umgcliptag inference-region=segments threshold=0 labels='red square,sky' %s "
             "! umgclipoverlay" % (common, common, common))

    # Truncated and empty buffers between good ones, in each schedule mode.
    for schedule in ("sync", "ordered", "latest"):
        name = "truncated and empty buffers (schedule=%s)" % schedule
        code, report, err = run_case(args, tmp, "truncated", "--schedule", schedule)
        if not case_ran(name, code, report, err):
            continue
        warnings = messages_of(report, "warning")
        check(name + ": one warning from umgclipenc naming the sizes",
              len(warnings) == 1 and warnings[0]["element"] == "enc"
              and "100 bytes" in warnings[0]["text"] and "64x48 RGBx" in warnings[0]["text"]
              and "12288" in warnings[0]["text"], report["messages"])
        check(name + ": no error, end of stream", report["eos"] and not messages_of(report, "error"),
              report["messages"])
        # latest: frames never wait, so all 6 may pass before the first result is in
        check(name + ": the 6 good frames passed (analysed unless latest), the 2 bad ones dropped",
              len(report["frames"]) == 6 and report["enc_stats"].get("frames") == 6
              and all(f["resolution"] == {"width": 64, "height": 48} for f in report["frames"])
              and (schedule == "latest" or all(f.get("objects") for f in report["frames"])),
              (report["frames"][:1], report["enc_stats"]))
        check(name + ": stats count 2 malformed buffers",
              report["enc_stats"].get("malformed") == 2, report["enc_stats"])

    code, report, err = run_case(args, tmp, "overlay-truncated")
    if case_ran("truncated buffer into umgclipoverlay", code, report, err):
        warnings = messages_of(report, "warning")
        check("truncated buffer into umgclipoverlay: a warning from it naming the size, all 3 "
              "frames passed on", report["eos"] and len(warnings) == 1
              and warnings[0]["element"] == "umgclipoverlay0" and "100 bytes" in warnings[0]["text"]
              and len(report["frames"]) == 3, report)

    code, report, err = run_case(args, tmp, "zero-caps")
    if case_ran("0x0 caps", code, report, err):
        errors = messages_of(report, "error")
        check("0x0 caps: refused at negotiation (not-negotiated error), nothing analysed",
              len(errors) == 1 and "not-negotiated" in errors[0]["debug"] and not report["frames"],
              report)

    # 1x1 frames and odd sizes of the 4:2:0 formats, through the whole chain.
    for video_format, width, height in (("RGBx", 1, 1), ("I420", 1, 1), ("NV12", 1, 1),
                                        ("NV12", 63, 47), ("I420", 63, 47), ("NV12", 17, 3),
                                        ("I420", 3, 17)):
        name = "%dx%d %s frames" % (width, height, video_format)
        path = os.path.join(tmp, "%s-%dx%d.json" % (video_format, width, height))
        code, out = launch("videotestsrc num-buffers=3 ! video/x-raw,format=%s,width=%d,height=%d "
                           "! %s ! umgclipjson location=%s ! fakesink"
                           % (video_format, width, height, chain, path), timeout=90)
        frames = read_json_lines(path) if code == 0 else None
        check(name + ": 3 frames analysed and tagged", code == 0 and frames is not None
              and len(frames) == 3
              and all(f["resolution"] == {"width": width, "height": height}
                      and f.get("segments") and f["objects"][0].get("tags") for f in frames),
              "exit %s: %s %s" % (code, out[-600:], (frames or [])[:1]))

    # A 16384x16384 frame (384 MiB in I420): analysed like any other, on the CPU backend.
    if device == "cpu":
        path = os.path.join(tmp, "huge.json")
        code, out = launch("videotestsrc num-buffers=1 pattern=black "
                           "! video/x-raw,format=I420,width=16384,height=16384 "
                           "! umgcliptag inference-region=full-frame threshold=0 "
                           "labels='red square,sky' %s ! umgclipjson location=%s ! fakesink"
                           % (common, path), timeout=120)
        frames = read_json_lines(path) if code == 0 else None
        check("16384x16384 caps: the frame analysed", code == 0 and frames is not None
              and len(frames) == 1
              and frames[0]["resolution"] == {"width": 16384, "height": 16384}
              and frames[0]["objects"][0]["tags"], "exit %s: %s" % (code, out[-600:]))

    # Upstream ROIs outside the frame (ROIS in stream_cases.py: inside, partly outside, wholly
    # outside to the right and below, and one whose x + w wraps in 32 bits).
    for region_mode in ("roi-align", "crop"):
        name = "upstream ROIs outside the frame (region-mode=%s)" % region_mode
        code, report, err = run_case(args, tmp, "roi-outside", "--region-mode", region_mode)
        if not case_ran(name, code, report, err):
            continue
        warnings = messages_of(report, "warning")
        check(name + ": one warning from umgcliptag naming the box and the frame",
              len(warnings) == 1 and warnings[0]["element"] == "tag"
              and "x 48, y 30, w 40, h 40" in warnings[0]["text"]
              and "64x48" in warnings[0]["text"], report["messages"])
        tagged = [[bool(o.get("tags")) for o in f["objects"]] for f in report["frames"]]
        check(name + ": boxes inside or partly inside tagged, boxes outside not",
              report["eos"] and len(tagged) == 3
              and all(t == [True, True, False, False, True] for t in tagged), tagged)

    # A labels-file replaced (by rename) while playing, then emptied, then deleted.
    code, report, err = run_case(args, tmp, "labels-file")
    if case_ran("labels-file replaced while playing", code, report, err):
        labels = [set(frame) for frame in report["labels"]]
        phases = report["phases"]
        before = labels[:phases["replaced"]]
        # 30 frames a second, looked at once a second: new labels within 60 frames
        after = labels[phases["replaced"] + 60:]
        print("labels-file: replaced at frame %d, first frame with the new labels %s, %d frames"
              % (phases["replaced"], next((i for i, l in enumerate(labels) if l & LABELS_B), None),
                 len(labels)))
        check("labels-file: the first labels before the replacement",
              before and all(l <= LABELS_A for l in before) and any(before), phases)
        check("labels-file: the new labels from at most 2 s after it, to the end (empty and "
              "deleted file ignored)", len(after) > 150 and all(l and l <= LABELS_B for l in after),
              [sorted(l) for l in after[:3]])
        infos = messages_of(report, "info")
        warnings = messages_of(report, "warning")
        check("labels-file: an info on the new labels, a warning each for the empty and the "
              "deleted file, naming the element and the file",
              len(infos) == 1 and "Read 3 labels" in infos[0]["text"] and len(warnings) == 2
              and all(w["element"] == "tag" and "labels.txt" in w["text"] for w in warnings)
              and "no labels" in warnings[0]["text"] and "No such file" in warnings[1]["text"]
              and not messages_of(report, "error"), report["messages"])

    # The model directory removed after start.
    code, report, err = run_case(args, tmp, "model-removed")
    if case_ran("model directory removed after start", code, report, err):
        check("model removed: analysis goes on (30 more frames, more inferences, no message)",
              report["frames_after"] >= report["frames_before"] + 30
              and report["inferences"][1] > report["inferences"][0]
              and not report["messages_playing"], report)
        errors = messages_of(report, "error", "messages_restart")
        check("model removed: a restart fails with an error naming the element and directory",
              report["restart"] == "failure" and len(errors) == 1
              and errors[0]["element"] in ("enc", "tag") and report["model"] in errors[0]["text"]
              and "not found" in errors[0]["text"], report["messages_restart"])


# ---- cameras that go away ----

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(args, port, width, height):
    """pipelines/rtsp_restream.py serving a plain live test stream on 127.0.0.1:port."""
    source = ("videotestsrc is-live=true pattern=ball "
              "! video/x-raw,width=%d,height=%d,framerate=15/1" % (width, height))
    proc = subprocess.Popen(
        [PYTHON_GI, os.path.join(args.pipelines, "rtsp_restream.py"), "--address", "127.0.0.1",
         "--port", str(port), "--mount", "/camera", "--input", source, "--encoder", "jpeg",
         "--analysis", "none"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    return proc, re.search(r"rtsp://\S+", line) is not None


def stop_server(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def json_records(path):
    """Complete lines of the file being written: frames and event lines."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return []
    records = []
    for line in text.split("\n")[:-1]:
        try:
            records.append(json.loads(line))
        except ValueError:
            records.append({"unparsable": line})
    return records


def wait_for(predicate, path, timeout, client):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and client.poll() is None:
        records = json_records(path)
        if predicate(records):
            return records
        time.sleep(0.25)
    return json_records(path)


def part_reconnect(args, tmp):
    """pipelines/rtsp_camera_to_json.sh against a gst-rtsp-server on 127.0.0.1 that is stopped
    for OUTAGE seconds and started again on the same port with another frame size: one process
    throughout, event lines for the gap, and every frame the client received after the restart
    analysed."""
    code = subprocess.run([PYTHON_GI, "-c", "import gi; gi.require_version('GstRtspServer', "
                           "'1.0'); from gi.repository import GstRtspServer"],
                          capture_output=True).returncode
    if code != 0:
        skip("reconnect", "gir1.2-gst-rtsp-server-1.0 not importable by " + PYTHON_GI)
        finish()
    outage = args.outage
    port = free_port()
    json_path = os.path.join(tmp, "camera.json")
    server, listening = start_server(args, port, 160, 120)
    if not check("reconnect: server listening", listening):
        stop_server(server)
        return
    env = dict(os.environ, LABELS="red square,green grass,blue sky", UMGCLIP_MODEL=args.model,
               UMGCLIP_DEVICE=args.device, LATENCY="100", THRESHOLD="0",
               RECONNECT_MIN_MS="250", RECONNECT_MAX_MS="2000")
    client = subprocess.Popen([os.path.join(args.pipelines, "rtsp_camera_to_json.sh"),
                               "rtsp://127.0.0.1:%d/camera" % port, json_path],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    frames = lambda records: [r for r in records if "resolution" in r]  # noqa: E731
    records = wait_for(lambda r: len(frames(r)) >= 20, json_path, 90, client)
    check("reconnect: 20 frames before the outage", len(frames(records)) >= 20,
          len(frames(records)))
    stop_server(server)
    lost_at = time.monotonic()
    records = wait_for(lambda r: any(x.get("event") == "source-lost" for x in r), json_path, 30,
                       client)
    check("reconnect: a source-lost event line once the server is gone",
          any(r.get("event") == "source-lost" for r in records), records[-2:])
    time.sleep(max(0.0, outage - (time.monotonic() - lost_at)))
    frames_in_gap = len(frames(json_records(json_path)))
    check("reconnect: the client is still running after %.0f s without a server" % outage,
          client.poll() is None, client.poll())
    # the camera comes back with another frame size, as after a settings change
    server, listening = start_server(args, port, 176, 144)
    check("reconnect: server restarted on the same port", listening)
    records = wait_for(lambda r: len(frames(r)) >= frames_in_gap + 30, json_path, 90, client)
    client.send_signal(signal.SIGINT)
    try:
        _, err = client.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        client.kill()
        _, err = client.communicate()
    stop_server(server)
    records = json_records(json_path)
    check("reconnect: client exits 0 after Ctrl-C", client.returncode == 0,
          "exit %s: %s" % (client.returncode, err[-1500:]))
    check("reconnect: every line is JSON", not any("unparsable" in r for r in records),
          [r for r in records if "unparsable" in r][:2])
    events = [r for r in records if "event" in r]
    print("reconnect events: %s" % json.dumps(events))
    kinds = [e["event"] for e in events]
    check("reconnect: events source-lost, then source-restored (retries between)",
          "source-lost" in kinds and "source-restored" in kinds
          and kinds.index("source-lost") < kinds.index("source-restored"), kinds)
    restored = next((i for i, r in enumerate(records) if r.get("event") == "source-restored"),
                    None)
    after = frames(records[restored + 1:]) if restored is not None else []
    gap = next((e for e in events if e["event"] == "source-restored"), {})
    check("reconnect: the restored event measures the gap (>= %.0f s)" % outage,
          gap.get("gap_s", 0) >= outage - 0.5, gap)
    before = frames(records[:restored]) if restored is not None else []
    check("reconnect: JSON resumes with tagged frames of the new size after the restart",
          # latest mode: the first frames of a new size pass before their first result
          len(after) >= 30 and all(f["objects"] and f["objects"][0].get("tags")
                                   for f in after[-20:])
          and all(f["resolution"] == {"width": 176, "height": 144} for f in after)
          and before and all(f["resolution"] == {"width": 160, "height": 120} for f in before),
          (len(after), after[:1]))
    summary = [json.loads(line[len("summary: "):]) for line in err.splitlines()
               if line.startswith("summary: ")]
    # The application counts the frames it handed the analysis in each connection; the JSON
    # lines after the restored event must be exactly those of the last connection.
    check("reconnect: no frame after the restart lost to the element",
          summary and summary[-1].get("frames_this_connection") == len(after)
          and summary[-1].get("connections") == 2,
          "%s, %d JSON frames after the restart" % (summary, len(after)))
    check("reconnect: one model load for the whole run", summary
          and summary[-1].get("analysis_starts") == 1, summary)
    pts = [f["timestamp"] for f in after]
    check("reconnect: timestamps after the restart increase", pts == sorted(pts) and
          len(set(pts)) == len(pts), pts[:5])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["malformed", "reconnect"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--pipelines", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--outage", type=float, default=6.0, help="seconds without a server")
    args = parser.parse_args()
    code = subprocess.run([PYTHON_GI, "-c", "import gi; gi.require_version('Gst', '1.0')"],
                          capture_output=True).returncode
    if code != 0:
        skip(args.part, "python3-gst-1.0 not importable by " + PYTHON_GI)
        finish()
    with tempfile.TemporaryDirectory(prefix="umgclip-streams-") as tmp:
        if args.part == "malformed":
            part_malformed(args, tmp)
        else:
            part_reconnect(args, tmp)
    finish()


if __name__ == "__main__":
    main()
