#!/usr/bin/env python3
"""Reads what the umgclip elements found as GstAnalytics (GStreamer >= 1.24; segmentation and
tensors >= 1.26), the metadata that upstream elements such as objectdetectionoverlay and DL
Streamer read too. Prints one JSON object per frame: detections with their classifications, the
segmentation's regions, and the tensors. docs/ANALYTICS.md describes the entries.

  pipelines/read_analytics.py --labels "cat,dog,grass,sky" --stuff-labels "grass,sky"
  pipelines/read_analytics.py --source "filesrc location=in.mp4 ! decodebin" --labels ...

Needs python3-gst-1.0 and the GstAnalytics typelib (gir1.2-gst-plugins-bad-1.0).
"""
import argparse
import json
import math
import struct
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstAnalytics", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, Gst, GstAnalytics, GstVideo  # noqa: E402


def classifications(rmeta, mtd_id):
    """The classifications that mtd_id CONTAINs (each IS_PART_OF it too), as lists of
    [label, score], best first. An umgclip detection contains one from umgclipseg (its label)
    and one from umgcliptag (the ranked tags) when both elements ran."""
    found = []
    for mtd in rmeta:
        if (isinstance(mtd, GstAnalytics.ClsMtd)
                and rmeta.get_relation(mtd_id, mtd.id) & GstAnalytics.RelTypes.CONTAIN):
            found.append([[GLib.quark_to_string(mtd.get_quark(i)), mtd.get_level(i)]
                          for i in range(mtd.get_length())])
    return found


def read_detections(rmeta):
    """Every object-detection mtd: type (a GQuark: the best tag, or umgclipseg's label), box in
    frame pixels, confidence, and what classifies it."""
    detections = []
    for mtd in rmeta:  # the GstAnalytics overrides iterate the relation meta's entries
        if not isinstance(mtd, GstAnalytics.ODMtd):
            continue
        _, x, y, w, h, confidence = mtd.get_location()
        detections.append({"id": mtd.id, "type": GLib.quark_to_string(mtd.get_obj_type()),
                           "box": [x, y, w, h], "confidence": confidence,
                           "classifications": classifications(rmeta, mtd.id)})
    return detections


def read_segmentation(rmeta):
    """The segmentation mtd (1.26): its mask is a GRAY16_LE GstBuffer at its own resolution,
    with a GstVideoMeta; each pixel holds a region id (umgclipseg's segment id, 0 for none), and
    the mask covers the frame area (x, y, w, h). Summarised as each region's pixel count."""
    if not hasattr(GstAnalytics, "SegmentationMtd"):
        return None
    for mtd in rmeta:
        if not isinstance(mtd, GstAnalytics.SegmentationMtd):
            continue
        mask, x, y, w, h = mtd.get_mask()
        video = GstVideo.buffer_get_video_meta(mask)
        data = mask.extract_dup(0, mask.get_size())
        pixels = {}
        for (region,) in struct.iter_unpack("<H", data[:2 * video.width * video.height]):
            pixels[region] = pixels.get(region, 0) + 1
        return {"id": mtd.id, "mask_size": [video.width, video.height], "location": [x, y, w, h],
                "region_ids": [mtd.get_region_id(i) for i in range(mtd.get_region_count())],
                "pixels_per_region": {str(k): v for k, v in sorted(pixels.items())},
                "classifications": classifications(rmeta, mtd.id)}
    return None


def read_tensors(buffer):
    """The tensors of the GstTensorMeta (1.26): umgclipenc's embedding is "umgclip-embedding",
    FLOAT32 with dims [1, dim], L2-normalised."""
    if not hasattr(GstAnalytics, "buffer_get_tensor_meta"):
        return []
    meta = GstAnalytics.buffer_get_tensor_meta(buffer)
    if meta is None:
        return []
    tensors = []
    for i in range(meta.num_tensors):
        tensor = meta.get(i)
        data = tensor.data.extract_dup(0, tensor.data.get_size())
        entry = {"id": GLib.quark_to_string(tensor.id), "dims": list(tensor.get_dims())}
        if tensor.data_type == GstAnalytics.TensorDataType.FLOAT32:
            values = [v for (v,) in struct.iter_unpack("<f", data)]
            entry["norm"] = math.sqrt(sum(v * v for v in values))
        tensors.append(entry)
    return tensors


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default="videotestsrc num-buffers=30 "
                        "! video/x-raw,width=320,height=240",
                        help="gst-launch fragment producing video")
    parser.add_argument("--labels", default="red,green,blue,white,black")
    parser.add_argument("--stuff-labels", default="white,black")
    parser.add_argument("--model", default=None, help="model directory")
    parser.add_argument("--device", default=None, help="auto, vulkan or cpu")
    args = parser.parse_args()

    Gst.init(None)
    common = ""
    if args.model:
        common += " model=\"%s\"" % args.model
    if args.device:
        common += " device=%s" % args.device
    # umgclipenc computes the features once (and attaches the tensor); umgclipseg finds things
    # (detections) and the segmentation; umgcliptag ranks the labels for each thing.
    analysis = ("umgclipenc{common} ! umgclipseg mode=panoptic threshold=0 labels=\"{labels}\" "
                "stuff-labels=\"{stuff}\"{common} ! umgcliptag inference-region=roi-list "
                "threshold=0 labels=\"{labels}\"{common}").format(
                    labels=args.labels, stuff=args.stuff_labels, common=common)
    pipeline = Gst.parse_launch(
        "%s ! videoconvert ! %s ! appsink name=sink sync=false" % (args.source, analysis))
    sink = pipeline.get_by_name("sink")

    pipeline.set_state(Gst.State.PLAYING)
    exit_code = 0
    while True:
        sample = sink.emit("try-pull-sample", Gst.SECOND * 60)
        if sample is None:
            break
        buffer = sample.get_buffer()
        rmeta = GstAnalytics.buffer_get_analytics_relation_meta(buffer)
        frame = {"pts": buffer.pts,
                 "detections": read_detections(rmeta) if rmeta else [],
                 "segmentation": read_segmentation(rmeta) if rmeta else None,
                 "tensors": read_tensors(buffer)}
        print(json.dumps(frame), flush=True)

    message = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
    if message is not None:
        error, _ = message.parse_error()
        print("error from %s: %s" % (message.src.get_name(), error.message), file=sys.stderr)
        exit_code = 1
    pipeline.set_state(Gst.State.NULL)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
