#!/usr/bin/python3
"""umgclipjson method=mqtt against a real mosquitto broker started here on 127.0.0.1, with a
paho subscriber: one message per frame with the very JSON that location= writes; a broker
away at start; a broker stopped and restarted mid-stream while a live source plays: the
stream keeps flowing (a leaky one-frame queue before umgclipjson loses nothing), messages
resume, and stats' dropped equals the frames the subscriber never got. Skipped (77) without
mosquitto or python3-paho-mqtt.

usage: test_publish.py --model MODEL
"""
import argparse
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from checks import check, finish, skip  # noqa: E402

try:
    import paho.mqtt.client as mqtt
except ImportError:
    mqtt = None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """mosquitto on a loopback port, persistent: a subscriber's session and its queued
    messages survive a restart, as a deployment's broker keeps them."""

    def __init__(self, directory, port):
        self.port = port
        self.config = os.path.join(directory, "mosquitto.conf")
        os.makedirs(os.path.join(directory, "data"), exist_ok=True)
        with open(self.config, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\n"
                    "persistence_location %s/\n" % (port, os.path.join(directory, "data")))
            # as root mosquitto would turn into user mosquitto, who cannot write here
            f.write("user %s\n" % pwd.getpwuid(os.geteuid()).pw_name)
        self.process = None

    def start(self):
        self.process = subprocess.Popen(["mosquitto", "-c", self.config],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)
        self.process = None


class Subscriber:
    """A persistent QoS 1 session on the topic, reconnecting on its own."""

    def __init__(self, port, topic):
        self.messages = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.client = mqtt.Client(client_id="umgclip-test-subscriber-%d" % port,
                                  clean_session=False)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self.on_connect
        self.client.on_message = self.on_message
        self.topic = topic
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.connected.wait(10)

    def on_connect(self, client, userdata, flags, rc):
        client.subscribe(self.topic, qos=1)
        self.connected.set()

    def on_message(self, client, userdata, message):
        with self.lock:
            self.messages.append(message.payload.decode())

    def received(self):
        with self.lock:
            return list(self.messages)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def play(description, on_frame=None, timeout=120):
    pipeline = Gst.parse_launch(description)
    arrivals = []
    if on_frame is not None:
        def probe(pad, info):
            arrivals.append(time.monotonic())
            on_frame(len(arrivals))
            return Gst.PadProbeReturn.OK
        pipeline.get_by_name("sink").get_static_pad("sink").add_probe(
            Gst.PadProbeType.BUFFER, probe)
    bus = pipeline.get_bus()
    pipeline.set_state(Gst.State.PLAYING)
    errors = []
    message = bus.timed_pop_filtered(timeout * Gst.SECOND,
                                     Gst.MessageType.EOS | Gst.MessageType.ERROR)
    if message is None:
        errors.append("no EOS in %d s" % timeout)
    elif message.type == Gst.MessageType.ERROR:
        errors.append(message.parse_error()[0].message)
    stats = pipeline.get_by_name("json").get_property("stats")
    pipeline.set_state(Gst.State.NULL)
    stats_after = pipeline.get_by_name("json").get_property("stats")
    fields = {stats_after.nth_field_name(i): stats_after.get_value(stats_after.nth_field_name(i))
              for i in range(stats_after.n_fields())}
    return errors, fields, arrivals, stats


def wait_for(condition, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.05)
    return condition()


def part_same_json(args, tmp, broker):
    """The subscriber gets one message per frame, equal to what location= writes."""
    n = 20
    subscriber = Subscriber(broker.port, "cameras/same")
    path = os.path.join(tmp, "frames.jsonl")
    errors, stats, _, _ = play(
        "videotestsrc num-buffers=%d ! video/x-raw,width=64,height=64,framerate=10/1 ! "
        "umgclipenc model=%s device=cpu ! umgcliptag model=%s device=cpu labels=red,green,blue "
        "threshold=0 ! umgclipjson name=json method=mqtt address=127.0.0.1:%d "
        "topic=cameras/same mqtt-client-id=umgclip-test-same ! "
        "umgclipjson location=%s ! fakesink name=sink"
        % (n, args.model, args.model, broker.port, path))
    check("same JSON: the pipeline ends cleanly", not errors, errors)
    wait_for(lambda: len(subscriber.received()) >= n)
    subscriber.close()
    with open(path) as f:
        written = [line.rstrip("\n") for line in f]
    got = subscriber.received()
    check("same JSON: one message per frame (%d of %d)" % (len(got), n), len(got) == n)
    check("same JSON: each message is the line location= wrote", got == written,
          (got[:1], written[:1]))
    check("same JSON: the tags are in it", all(json.loads(m)["objects"] for m in got), got[:1])
    check("same JSON: stats count every frame published, none dropped",
          stats["published"] == n and stats["dropped"] == 0 and stats["frames"] == n, stats)


def part_away_at_start(args, tmp, port):
    """No broker when the pipeline starts: messages wait and go once it is there."""
    n = 20
    broker = Broker(os.path.join(tmp, "late"), port)
    started = []

    def on_frame(count):
        if count == 5 and not started:
            started.append(broker.start())
    errors, stats, arrivals, _ = play(
        "videotestsrc is-live=true num-buffers=%d ! "
        "video/x-raw,width=64,height=64,framerate=10/1 ! "
        "umgclipjson name=json method=mqtt address=127.0.0.1:%d topic=late "
        "max-reconnect-interval=1 ! fakesink name=sink" % (n, port), on_frame=on_frame)
    check("away at start: the stream flows and ends", not errors and len(arrivals) == n,
          (errors, len(arrivals)))
    check("away at start: every frame's message reaches the broker once it is there",
          stats["published"] == n and stats["dropped"] == 0 and stats["connections"] == 1, stats)
    broker.stop()


def part_restart(args, tmp, broker):
    """The broker stopped at frame 20 and started again at frame 45 of a live 10 fps stream,
    with room for 8 messages."""
    n, stop_at, start_at, room = 80, 20, 45, 8
    subscriber = Subscriber(broker.port, "cameras/restart")
    events = {}

    def on_frame(count):
        if count == stop_at:
            events["stopped"] = time.monotonic()
            broker.stop()
        elif count == start_at:
            events["started"] = broker.start()
    errors, stats, arrivals, _ = play(
        "videotestsrc is-live=true num-buffers=%d pattern=ball ! "
        "video/x-raw,width=64,height=64,framerate=10/1 ! "
        "umgclipenc model=%s device=cpu schedule=latest ! "
        "queue leaky=downstream max-size-buffers=1 max-size-bytes=0 max-size-time=0 ! "
        "umgclipjson name=json method=mqtt address=127.0.0.1:%d topic=cameras/restart "
        "max-queued=%d max-reconnect-interval=1 ! fakesink name=sink sync=false"
        % (n, args.model, broker.port, room), on_frame=on_frame, timeout=60)
    check("restart: the broker came back", events.get("started") is True, events)
    check("restart: the pipeline ends cleanly", not errors, errors)
    check("restart: every frame passed umgclipjson while the broker was away (none lost "
          "in the leaky one-frame queue before it)", len(arrivals) == n, len(arrivals))
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    print("     largest gap between frames: %.1f ms (frame period 100 ms)"
          % (1000 * max(gaps) if gaps else 0))
    wait_for(lambda: len({json.loads(m)["timestamp"] for m in subscriber.received()})
             >= n - stats["dropped"])
    subscriber.close()
    got = {json.loads(m)["timestamp"] for m in subscriber.received()}
    first = min(got) if got else 0
    period = Gst.SECOND // 10
    frames = {(t - first) // period for t in got}
    missing = sorted(set(range(n)) - frames)
    print("     dropped %d; the subscriber lacks frames %s" % (stats["dropped"], missing))
    check("restart: messages resume after the restart",
          any(f > start_at for f in frames), sorted(frames)[-3:])
    check("restart: the broker's absence cost messages (%d dropped)" % stats["dropped"],
          stats["dropped"] > 0)
    check("restart: stats' dropped equals what the subscriber lacks", len(missing) ==
          stats["dropped"], (missing, stats))
    # reconnecting takes up to max-reconnect-interval (1 s: 10 frames) after the restart
    check("restart: what was lost lies between the stop and the reconnection",
          all(stop_at <= f <= start_at + 12 for f in missing), missing)
    check("restart: two connections (before and after)", stats["connections"] == 2, stats)


def part_bad_settings(args, tmp):
    for options, fault in [("address=nohost:99999", "nohost:99999"),
                           ("address=:1883", ":1883"),
                           ("topic=cameras/#", "cameras/#")]:
        result = subprocess.run(
            ["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=2", "!", "umgclipjson",
             "method=mqtt"] + options.split() + ["!", "fakesink"],
            capture_output=True, text=True, timeout=60)
        check("bad %s fails naming it" % options, result.returncode != 0
              and fault in result.stderr, result.stderr[-300:])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    args = parser.parse_args()
    if shutil.which("mosquitto") is None or mqtt is None:
        skip("mqtt", "needs mosquitto and python3-paho-mqtt (apt-get install mosquitto "
             "python3-paho-mqtt)")
        finish()
    Gst.init(None)
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(os.path.join(tmp, "broker"), free_port())
        if not check("mosquitto starts on 127.0.0.1", broker.start()):
            finish()
        try:
            part_same_json(args, tmp, broker)
            part_restart(args, tmp, broker)
        finally:
            broker.stop()
        part_away_at_start(args, tmp, free_port())
        part_bad_settings(args, tmp)
    finish()


if __name__ == "__main__":
    main()
