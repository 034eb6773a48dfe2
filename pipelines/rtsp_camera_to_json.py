#!/usr/bin/python3
"""RTSP camera in, JSON out, for cameras that go away: tags each frame with free-text labels and
appends one JSON object per frame to a file, and survives the camera disappearing (power cut,
reboot, network) and returning. Stop with Ctrl-C.

  pipelines/rtsp_camera_to_json.py rtsp://user:pass@camera.local/stream tags.json

Two pipelines: the camera (rtspsrc ! decodebin ! videoconvert ! appsink), torn down and started
again with back-off whenever it fails, stops sending or ends; and the analysis (appsrc !
umgcliptag ! umgclipjson), started once, so the model stays loaded and the worker warm through an
outage. Frames are timestamped on the analysis pipeline's clock, so timestamps keep increasing
across reconnections. The gap is marked in the JSON file with two event lines:

  {"event": "source-lost", "wall_time": ..., "reason": "...", "frames_before": N}
  {"event": "source-restored", "wall_time": ..., "gap_s": 6.2, "attempts": 4, "connection": 2}

On exit a summary goes to standard error as one JSON line after "summary: " (connections, frames
handed to the analysis in all and in the last connection, frames written, analysis starts).

Environment: LABELS, THRESHOLD, UMGCLIP_MODEL, UMGCLIP_DEVICE, INTERVAL, LATENCY as in
rtsp_camera_to_json.sh; RECONNECT_MIN_MS / RECONNECT_MAX_MS (back-off between attempts, doubled
after each failure, default 500 / 10000); STALL_S (a connection that delivers no frame for this
long is treated as lost, default 10).
"""
import json
import os
import signal
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

# the formats umgcliptag reads in system memory
FORMATS = "{ RGB, RGBA, RGBx, BGRx, BGRA, NV12, I420 }"


def env(name, default):
    value = os.environ.get(name)
    return value if value else default


class Camera:
    def __init__(self, url, json_path):
        self.url = url
        self.lock = threading.Lock()  # the output file, and the counters below
        self.out = open(json_path, "w")
        self.min_backoff_ms = int(env("RECONNECT_MIN_MS", "500"))
        self.max_backoff_ms = int(env("RECONNECT_MAX_MS", "10000"))
        self.stall_s = float(env("STALL_S", "10"))
        self.backoff_ms = self.min_backoff_ms
        self.connections = 0            # connections that delivered a frame
        self.frames_pushed = 0          # handed to the analysis, in all
        self.frames_this_connection = 0
        self.frames_written = 0
        self.analysis_starts = 0        # umgcliptag READY -> PAUSED: model (re)acquired
        self.lost_since = None          # monotonic time of the loss, None while connected
        self.attempts = 0               # since the loss
        self.last_frame = time.monotonic()
        self.retry_source = None
        self.stopping = False
        self.loop = GLib.MainLoop()
        self.source = None
        self.analysis = self.make_analysis()

    # ---- the analysis: started once ----

    def make_analysis(self):
        model = os.environ.get("UMGCLIP_MODEL")
        description = (
            "appsrc name=frames is-live=true format=time do-timestamp=true "
            "! umgcliptag name=tag inference-region=full-frame threshold=%s labels=\"%s\" "
            "inference-interval=%s qos=true device=%s %s "
            "! umgclipjson method=message ! fakesink sync=false"
            % (env("THRESHOLD", "0.5"), env("LABELS", "person,car,truck,bicycle,dog,empty street"),
               env("INTERVAL", "1"), env("UMGCLIP_DEVICE", "auto"),
               "model=\"%s\"" % model if model else ""))
        pipeline = Gst.parse_launch(description)
        self.appsrc = pipeline.get_by_name("frames")
        self.tag = pipeline.get_by_name("tag")
        bus = pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self.on_analysis_message)
        return pipeline

    def on_analysis_message(self, bus, message):
        if message.type == Gst.MessageType.ELEMENT:
            structure = message.get_structure()
            if structure is not None and structure.get_name() == "umgclip-json":
                with self.lock:
                    self.out.write(structure.get_string("json") + "\n")
                    self.out.flush()
                    self.frames_written += 1
        elif message.type == Gst.MessageType.STATE_CHANGED and message.src == self.tag:
            old, new, _ = message.parse_state_changed()
            if old == Gst.State.READY and new == Gst.State.PAUSED:
                self.analysis_starts += 1
        elif message.type == Gst.MessageType.ERROR:
            error, debug = message.parse_error()
            print("rtsp_camera_to_json: analysis failed in %s: %s (%s)"
                  % (message.src.get_name(), error.message, debug), file=sys.stderr, flush=True)
            self.exit_code = 1
            self.loop.quit()
        elif message.type == Gst.MessageType.WARNING:
            error, _ = message.parse_warning()
            print("rtsp_camera_to_json: warning from %s: %s"
                  % (message.src.get_name(), error.message), file=sys.stderr, flush=True)
        elif message.type == Gst.MessageType.EOS:
            self.loop.quit()

    # ---- the camera: torn down and made again ----

    def start_source(self):
        self.retry_source = None
        self.attempts += 1
        description = (
            "rtspsrc name=rtsp location=\"%s\" protocols=tcp latency=%s ! decodebin "
            "! videoconvert ! video/x-raw,format=%s "
            "! appsink name=sink emit-signals=true sync=false max-buffers=0 drop=false"
            % (self.url, env("LATENCY", "200"), FORMATS))
        self.source = Gst.parse_launch(description)
        self.source.get_by_name("sink").connect("new-sample", self.on_sample)
        bus = self.source.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self.on_source_message)
        self.last_frame = time.monotonic()
        if self.source.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            self.source_lost("could not start the RTSP source")
        return False

    def stop_source(self):
        if self.source is None:
            return
        self.source.get_bus().remove_signal_watch()
        self.source.set_state(Gst.State.NULL)
        self.source = None

    def on_source_message(self, bus, message):
        if self.source is None or bus != self.source.get_bus():
            return
        if message.type == Gst.MessageType.ERROR:
            error, _ = message.parse_error()
            self.source_lost("%s: %s" % (message.src.get_name(), error.message))
        elif message.type == Gst.MessageType.EOS:
            self.source_lost("end of stream from the camera")

    def write_event(self, event):
        with self.lock:
            self.out.write(json.dumps(event) + "\n")
            self.out.flush()

    def source_lost(self, reason):
        """Main loop: the connection failed (or never came up); retry after the back-off."""
        self.stop_source()
        if self.stopping:
            return
        if self.lost_since is None:
            self.lost_since = time.monotonic()
            self.attempts = 0
            self.backoff_ms = self.min_backoff_ms
            self.write_event({"event": "source-lost", "wall_time": time.time(), "reason": reason,
                              "frames_before": self.frames_pushed})
            print("rtsp_camera_to_json: camera lost (%s), reconnecting" % reason,
                  file=sys.stderr, flush=True)
        else:
            self.backoff_ms = min(self.backoff_ms * 2, self.max_backoff_ms)
        if self.retry_source is None:
            self.retry_source = GLib.timeout_add(self.backoff_ms, self.start_source)

    def on_sample(self, sink):
        """Camera's streaming thread: the frame goes to the analysis as it is. A fault in this
        script ends the run with exit code 1 rather than dropping every frame unseen."""
        try:
            return self.forward_sample(sink)
        except Exception as error:  # noqa: BLE001 -- any fault here would repeat for every frame
            print("rtsp_camera_to_json: could not forward a frame: %r" % error,
                  file=sys.stderr, flush=True)
            self.exit_code = 1
            GLib.idle_add(self.loop.quit)
            return Gst.FlowReturn.ERROR

    def forward_sample(self, sink):
        sample = sink.emit("pull-sample")
        if sample is None:
            return Gst.FlowReturn.FLUSHING
        with self.lock:
            if self.lost_since is not None or self.connections == 0:
                self.connections += 1
                self.frames_this_connection = 0
                if self.lost_since is not None:
                    # written before the frame is pushed: the frame's line comes after it
                    self.out.write(json.dumps({
                        "event": "source-restored", "wall_time": time.time(),
                        "gap_s": round(time.monotonic() - self.lost_since, 3),
                        "attempts": self.attempts, "connection": self.connections}) + "\n")
                    self.out.flush()
                    self.lost_since = None
                    self.backoff_ms = self.min_backoff_ms
            self.frames_pushed += 1
            self.frames_this_connection += 1
            self.last_frame = time.monotonic()
        caps = sample.get_caps()
        if not caps.is_equal(self.appsrc.get_property("caps") or Gst.Caps.new_empty()):
            self.appsrc.set_property("caps", caps)  # a camera back with another size
        buffer = sample.get_buffer().copy()  # timestamps of the analysis clock, not the camera's
        if hasattr(buffer, "make_writable"):
            buffer.make_writable()  # gst-python 1.26 guards writes on a wrapper's extra ref
        buffer.pts = buffer.dts = Gst.CLOCK_TIME_NONE
        return self.appsrc.emit("push-buffer", buffer)

    def watchdog(self):
        """A camera that stops sending without closing the connection is lost too."""
        if (self.source is not None and self.lost_since is None
                and time.monotonic() - self.last_frame > self.stall_s):
            self.source_lost("no frame for %.0f s" % self.stall_s)
        return True

    # ---- the process ----

    def stop(self):
        """Ctrl-C: the camera goes, the analysis drains (end of stream), the summary is printed."""
        if self.stopping:
            self.loop.quit()
            return True
        self.stopping = True
        if self.retry_source is not None:
            GLib.source_remove(self.retry_source)
            self.retry_source = None
        self.stop_source()
        self.appsrc.emit("end-of-stream")
        GLib.timeout_add_seconds(20, self.loop.quit)  # the analysis did not drain
        return True

    def run(self):
        self.exit_code = 0
        if self.analysis.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            print("rtsp_camera_to_json: the analysis pipeline could not start",
                  file=sys.stderr, flush=True)
            return 1
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, self.stop)
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, self.stop)
        GLib.timeout_add(500, self.watchdog)
        self.start_source()
        self.loop.run()
        self.stop_source()
        self.analysis.set_state(Gst.State.NULL)
        self.out.close()
        print("summary: " + json.dumps({
            "event": "end", "connections": self.connections, "frames": self.frames_pushed,
            "frames_this_connection": self.frames_this_connection,
            "frames_written": self.frames_written, "analysis_starts": self.analysis_starts}),
            file=sys.stderr, flush=True)
        return self.exit_code


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: %s RTSP_URL OUTPUT.json" % sys.argv[0])
    Gst.init(None)
    return Camera(sys.argv[1], sys.argv[2]).run()


if __name__ == "__main__":
    sys.exit(main())
