#!/usr/bin/env python3
"""RTSP server that re-streams a video source with the umgclip analysis drawn on it, so any
RTSP player (VLC, ffplay, a recorder) sees the annotated stream.

  ./rtsp_restream.py --input rtsp://camera.local/stream --labels "person,car,bicycle,road,sky"
  ffplay rtsp://127.0.0.1:8554/annotated

Needs python3-gst-1.0 and gir1.2-gst-rtsp-server-1.0. Environment: UMGCLIP_MODEL (model
directory, else the elements' default), UMGCLIP_DEVICE (auto|vulkan|cpu).
"""
import argparse
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

# Segment the scene, tag each segment and draw both; the encoder then sees ordinary video.
DEFAULT_ANALYSIS = ("umgclipenc {common} "
                    "! umgclipseg mode=panoptic labels=\"{labels}\" {stuff} {common} "
                    "! umgcliptag inference-region=segments labels=\"{labels}\" {common} "
                    "! umgclipoverlay")


def choose_encoder(name):
    """Encoder + RTP payloader. H.264 plays everywhere but lives in plugins-ugly; VP8 and JPEG
    come with plugins-good, so one of them is always there."""
    candidates = {
        "h264": ("x264enc", "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 "
                 "! rtph264pay name=pay0 pt=96 config-interval=1"),
        "vp8": ("vp8enc", "vp8enc deadline=1 keyframe-max-dist=30 ! rtpvp8pay name=pay0 pt=96"),
        # RTP/JPEG (RFC 2435) carries only 4:2:0 and 4:2:2 JPEG.
        "jpeg": ("jpegenc", "video/x-raw,format=I420 ! jpegenc quality=85 "
                 "! rtpjpegpay name=pay0 pt=26"),
    }
    order = ["h264", "vp8", "jpeg"] if name == "auto" else [name]
    for key in order:
        factory, description = candidates[key]
        if Gst.ElementFactory.find(factory) is not None:
            return description
    sys.exit("rtsp_restream: encoder %s (%s) is not installed" % (name, candidates[name][0]))


def source_description(source):
    """A URI becomes a decoding source; anything else is taken as a gst-launch fragment."""
    if "://" in source and "!" not in source:
        return "uridecodebin uri=\"%s\"" % source
    return source


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", default="videotestsrc is-live=true pattern=ball "
                        "! video/x-raw,width=640,height=480,framerate=15/1",
                        help="URI (rtsp://, file://) or gst-launch fragment of the source")
    parser.add_argument("--labels", default="ball,background,person,car",
                        help="comma-separated labels to look for")
    parser.add_argument("--stuff-labels", default="background",
                        help="labels that are regions rather than countable objects")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="minimum score of a segment or tag to be shown")
    parser.add_argument("--analysis", default=None,
                        help="gst-launch fragment between source and encoder instead of the "
                        "default umgclipenc ! umgclipseg ! umgcliptag ! umgclipoverlay; "
                        "'none' streams the source unanalysed")
    parser.add_argument("--encoder", default="auto", choices=["auto", "h264", "vp8", "jpeg"])
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--mount", default="/annotated")
    args = parser.parse_args()

    Gst.init(None)
    common = []
    if os.environ.get("UMGCLIP_MODEL"):
        common.append("model=\"%s\"" % os.environ["UMGCLIP_MODEL"])
    if os.environ.get("UMGCLIP_DEVICE"):
        common.append("device=%s" % os.environ["UMGCLIP_DEVICE"])
    # A live camera must never wait for the model: skip inference, not frames, when late.
    common.append("qos=true threshold=%g" % args.threshold)
    if args.analysis is None:
        analysis = DEFAULT_ANALYSIS.format(
            common=" ".join(common), labels=args.labels,
            stuff="stuff-labels=\"%s\"" % args.stuff_labels if args.stuff_labels else "")
    elif args.analysis == "none":
        analysis = "identity"
    else:
        analysis = args.analysis

    launch = "( %s ! videoconvert ! %s ! videoconvert ! %s )" % (
        source_description(args.input), analysis, choose_encoder(args.encoder))

    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    # One analysis pipeline for all viewers instead of one per client.
    factory.set_shared(True)
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        sys.exit("rtsp_restream: cannot listen on %s:%d" % (args.address, args.port))

    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    # Scripts (and the tests) wait for this line before connecting.
    print("serving rtsp://%s:%d%s" % (args.address, server.get_bound_port(), args.mount),
          flush=True)
    print("pipeline: %s" % launch, file=sys.stderr, flush=True)
    loop.run()


if __name__ == "__main__":
    main()
