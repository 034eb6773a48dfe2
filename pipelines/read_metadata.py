#!/usr/bin/env python3
"""Reads what the umgclip elements found from buffers in an appsink, in Python, without the
C header: tags from the region-of-interest metas, the segmentation from the
"UmgClipSegmentation" custom meta. Prints one JSON object per frame.

  pipelines/read_metadata.py --labels "cat,dog,grass,sky"
  pipelines/read_metadata.py --source "filesrc location=in.mp4 ! decodebin" --labels ...

Needs python3-gst-1.0 (PyGObject with GStreamer's overrides).
"""
import argparse
import json
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, Gst, GstApp, GstVideo  # noqa: E402,F401


def value_list(structure, field):
    """A GstValueArray field as a Python list ([] when absent)."""
    if not structure.has_field(field):
        return []
    array = structure.get_value(field)
    return [array[i] for i in range(len(array))]


def read_regions(buffer):
    """Tags of every region of interest. PyGObject cannot iterate a buffer's metas, but the
    elements number ROI metas 0..n-1, so asking for each id in turn finds them all."""
    regions = []
    roi_id = 0
    while True:
        roi = GstVideo.buffer_get_video_region_of_interest_meta_id(buffer, roi_id)
        if roi is None:
            break
        region = {"id": roi.id, "roi_type": GLib.quark_to_string(roi.roi_type),
                  "x": roi.x, "y": roi.y, "w": roi.w, "h": roi.h}
        tags = roi.get_param("umgclip")
        if tags is not None:
            region["label"] = tags.get_value("label")
            region["label_id"] = tags.get_value("label_id")
            region["confidence"] = tags.get_value("confidence")
            region["tags"] = value_list(tags, "tags")  # best first
            region["scores"] = value_list(tags, "scores")
            region["model"] = tags.get_value("model")
        regions.append(region)
        roi_id += 1
    return regions


def read_segmentation(buffer):
    """The segmentation as plain values. The class map is a GstBuffer of one label id per mask
    pixel (GRAY8, or GRAY16_LE with more than 255 labels); here it is summarised as the pixel
    count of each label."""
    custom = buffer.get_custom_meta("UmgClipSegmentation")
    if custom is None:
        return None
    structure = custom.get_structure()
    width, height = structure.get_value("width"), structure.get_value("height")
    labels = value_list(structure, "labels")
    segments = []
    for segment in value_list(structure, "segments"):
        segments.append({
            "id": segment.get_value("id"),
            "label": segment.get_value("label"),
            "label_id": segment.get_value("label-id"),
            "score": segment.get_value("score"),
            "is_thing": segment.get_value("is-thing"),
            "box": [segment.get_value("x"), segment.get_value("y"),
                    segment.get_value("width"), segment.get_value("height")],
            "area": segment.get_value("area"),
        })
    pixel_counts = {}
    class_map = structure.get_value("class-map")
    ok, info = class_map.map(Gst.MapFlags.READ)
    if ok:
        data = info.data
        bytes_per_pixel = len(data) // max(1, width * height)
        step = max(1, bytes_per_pixel)
        for offset in range(0, width * height * step, step):
            label_id = int.from_bytes(data[offset:offset + step], "little")
            name = labels[label_id] if label_id < len(labels) else "none"
            pixel_counts[name] = pixel_counts.get(name, 0) + 1
        class_map.unmap(info)
    return {"width": width, "height": height,
            "frame_width": structure.get_value("frame-width"),
            "frame_height": structure.get_value("frame-height"),
            "labels": labels, "segments": segments,
            "has_instance_map": structure.has_field("instance-map"),
            "pixels_per_label": pixel_counts}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default="videotestsrc num-buffers=30 "
                        "! video/x-raw,width=320,height=240",
                        help="gst-launch fragment producing video")
    parser.add_argument("--labels", default="red,green,blue,white,black")
    parser.add_argument("--analysis", default=None,
                        help="gst-launch fragment of the analysis (default: umgclipseg "
                        "panoptic, then umgcliptag on its segments)")
    parser.add_argument("--model", default=None, help="model directory")
    parser.add_argument("--device", default=None, help="auto, vulkan or cpu")
    args = parser.parse_args()

    Gst.init(None)
    common = ""
    if args.model:
        common += " model=\"%s\"" % args.model
    if args.device:
        common += " device=%s" % args.device
    analysis = args.analysis or (
        "umgclipseg mode=panoptic labels=\"{labels}\"{common} "
        "! umgcliptag inference-region=segments labels=\"{labels}\"{common}").format(
            labels=args.labels, common=common)
    pipeline = Gst.parse_launch(
        "%s ! videoconvert ! %s ! appsink name=sink sync=false" % (args.source, analysis))
    sink = pipeline.get_by_name("sink")

    pipeline.set_state(Gst.State.PLAYING)
    exit_code = 0
    while True:
        # try_pull_sample returns None at end of stream or on error; the bus tells which.
        sample = sink.try_pull_sample(Gst.SECOND * 60)
        if sample is None:
            break
        buffer = sample.get_buffer()
        # VideoInfo rather than the caps' structure, which GStreamer 1.26's Python bindings
        # hand out only inside a "with" block
        info = GstVideo.VideoInfo.new_from_caps(sample.get_caps())
        frame = {"pts": buffer.pts,
                 "width": info.width,
                 "height": info.height,
                 "regions": read_regions(buffer),
                 "segmentation": read_segmentation(buffer)}
        print(json.dumps(frame), flush=True)

    message = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
    if message is not None:
        error, debug = message.parse_error()
        print("error from %s: %s" % (message.src.get_name(), error.message), file=sys.stderr)
        exit_code = 1
    elif not sink.is_eos():
        print("error: no frame for 60 s", file=sys.stderr)
        exit_code = 1
    pipeline.set_state(Gst.State.NULL)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
