#!/usr/bin/python3
"""GstAnalytics from umgclip in real pipelines (GStreamer >= 1.26), read as an application reads it.

  python    appsrc ! umgclipseg mode=panoptic ! umgcliptag inference-region=roi-list ! appsink,
            read through PyGObject and the GstAnalytics typelib: every thing of the segmentation is
            an object detection (type, box, confidence as in our segment table) containing the
            segmenter's and the tagger's classifications; the segmentation mtd has our segment ids
            as region ids and a mask of segment ids at mask resolution over the whole frame.
  overlay   appsrc (frames with ROI metas) ! umgcliptag inference-region=roi-list !
            objectdetectionoverlay ! appsink against the same frames without umgcliptag: pixels
            inside every box differ, and without our metadata the overlay leaves the frames alone.
  example   pipelines/read_analytics.py on videotestsrc: its JSON has the embedding tensor
            (dims [1, dim], unit norm), detections each with umgclipseg's and umgcliptag's
            classifications, and a segmentation whose mask pixels are its region ids.
"""
import argparse
import json
import os
import random
import subprocess
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
gi.require_version("GstAnalytics", "1.0")
from gi.repository import GLib, Gst, GstAnalytics, GstVideo  # noqa: E402

WIDTH, HEIGHT = 64, 48
BLOCK = 8


def frame_bytes(seed, channels):
    """A blocky frame: each 8×8 block one random colour, the same for a seed."""
    rng = random.Random(seed)
    colours = [[bytes(rng.randrange(256) for _ in range(3)) for _ in range(WIDTH // BLOCK)]
               for _ in range(HEIGHT // BLOCK)]
    alpha = b"\xff" if channels == 4 else b""
    rows = []
    for y in range(HEIGHT):
        rows.append(b"".join((colours[y // BLOCK][x // BLOCK] + alpha) for x in range(WIDTH)))
    return b"".join(rows)


def run(description, frames):
    """Pushes (data, rois) frames into appsrc name=src, returns the samples of appsink name=sink."""
    pipeline = Gst.parse_launch(description)
    src, sink = pipeline.get_by_name("src"), pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    samples = []
    for index, (data, rois) in enumerate(frames):
        # memory of its own, which elements that draw (objectdetectionoverlay) can write to
        buf = Gst.Buffer.new_allocate(None, len(data), None)
        buf.fill(0, data)
        buf.pts = index * Gst.SECOND // 30
        buf.duration = Gst.SECOND // 30
        for roi_type, x, y, w, h in rois:
            GstVideo.buffer_add_video_region_of_interest_meta(buf, roi_type, x, y, w, h)
        if src.emit("push-buffer", buf) != Gst.FlowReturn.OK:
            sys.exit(f"push-buffer failed on frame {index}")
    src.emit("end-of-stream")
    while True:
        sample = sink.emit("try-pull-sample", 60 * Gst.SECOND)
        if sample is None:
            break
        samples.append(sample)
    message = pipeline.get_bus().timed_pop_filtered(5 * Gst.SECOND,
                                                    Gst.MessageType.ERROR | Gst.MessageType.EOS)
    pipeline.set_state(Gst.State.NULL)
    if message is not None and message.type == Gst.MessageType.ERROR:
        sys.exit(f"pipeline error: {message.parse_error()[0].message}")
    if len(samples) != len(frames):
        sys.exit(f"{len(samples)} frames out of {len(frames)}")
    return samples


def quark_name(quark):
    return GLib.quark_to_string(quark)


def check(condition, what):
    if not condition:
        sys.exit("FAIL: " + what)


def mtds_of(rmeta, kind):
    return [mtd for mtd in rmeta if isinstance(mtd, kind)]


def test_python(model):
    caps = f"video/x-raw,format=RGB,width={WIDTH},height={HEIGHT},framerate=30/1"
    description = (
        f"appsrc name=src format=time caps={caps} ! "
        f"umgclipseg model={model} device=cpu schedule=ordered mode=panoptic "
        "labels=sky,road,car,person stuff-labels=sky,road threshold=0 ! "
        f"umgcliptag model={model} device=cpu schedule=ordered inference-region=roi-list "
        "labels=red,green,blue threshold=0 top-k=2 ! appsink name=sink sync=false")
    samples = run(description, [(frame_bytes(seed, 3), []) for seed in (4, 5, 6)])
    n_detections = 0
    for index, sample in enumerate(samples):
        buf = sample.get_buffer()
        rmeta = GstAnalytics.buffer_get_analytics_relation_meta(buf)
        check(rmeta is not None, f"frame {index}: no relation meta")
        table = buf.get_custom_meta("UmgClipSegmentation").get_structure()
        segments = [table.get_value("segments")[i] for i in range(len(table.get_value("segments")))]
        things = [s for s in segments if s.get_value("is-thing")]
        detections = mtds_of(rmeta, GstAnalytics.ODMtd)
        check(len(detections) == len(things),
              f"frame {index}: {len(detections)} detections for {len(things)} things")
        for thing in things:
            box = tuple(thing.get_value(f) for f in ("x", "y", "width", "height"))
            matches = [od for od in detections if tuple(od.get_location()[1:5]) == box]
            check(len(matches) == 1, f"frame {index}: thing {box} has {len(matches)} detections")
            od = matches[0]
            check(quark_name(od.get_obj_type()) == thing.get_value("label"),
                  f"frame {index}: detection type {quark_name(od.get_obj_type())}")
            check(abs(od.get_location()[5] - thing.get_value("score")) < 1e-6, "confidence")
            contained = [cls for cls in mtds_of(rmeta, GstAnalytics.ClsMtd)
                         if rmeta.get_relation(od.id, cls.id) & GstAnalytics.RelTypes.CONTAIN]
            lengths = sorted(cls.get_length() for cls in contained)
            check(lengths == [1, 2], f"frame {index}: classifications of lengths {lengths}")
            for cls in contained:
                check(rmeta.get_relation(cls.id, od.id) & GstAnalytics.RelTypes.IS_PART_OF,
                      "classification is not part of its detection")
                if cls.get_length() == 2:
                    tags = [quark_name(cls.get_quark(i)) for i in range(2)]
                    check(set(tags) <= {"red", "green", "blue"}, f"tags {tags}")
                    check(cls.get_level(0) >= cls.get_level(1), "tags not ranked")
                else:
                    check(quark_name(cls.get_quark(0)) == thing.get_value("label"), "class")
            n_detections += 1
        segmentations = mtds_of(rmeta, GstAnalytics.SegmentationMtd)
        check(len(segmentations) == 1, f"frame {index}: {len(segmentations)} segmentation mtds")
        segmentation = segmentations[0]
        ids = [segmentation.get_region_id(i) for i in range(segmentation.get_region_count())]
        check(ids == [s.get_value("id") for s in segments], f"frame {index}: region ids {ids}")
        mask, x, y, w, h = segmentation.get_mask()
        check((x, y, w, h) == (0, 0, table.get_value("frame-width"),
                               table.get_value("frame-height")), f"mask placed at {x},{y} {w}x{h}")
        video = GstVideo.buffer_get_video_meta(mask)
        check(video is not None and (video.width, video.height) ==
              (table.get_value("width"), table.get_value("height")), "mask size")
        instance = table.get_value("instance-map")
        check(mask.extract_dup(0, mask.get_size()) == instance.extract_dup(0, instance.get_size()),
              f"frame {index}: mask pixels are not the segment ids of the instance map")
    check(n_detections > 0, "no thing in any frame: nothing was checked")
    print(f"python: {len(samples)} frames, {n_detections} detections with their classifications")


def test_overlay(model):
    caps = f"video/x-raw,format=RGBA,width={WIDTH},height={HEIGHT},framerate=30/1"
    boxes = [("thing", 4, 6, 24, 20), ("other", 36, 20, 22, 24)]
    frames = [(frame_bytes(seed, 4), boxes) for seed in (1, 2)]
    # videoconvert (passthrough here) answers the overlay's caps queries, which appsrc does not
    tail = (f"videoconvert ! objectdetectionoverlay ! videoconvert ! {caps} ! "
            "appsink name=sink sync=false")
    ours = run(f"appsrc name=src format=time caps={caps} ! umgcliptag model={model} device=cpu "
               "schedule=ordered inference-region=roi-list labels=cat,dog,car threshold=0 ! "
               + tail, frames)
    plain = run(f"appsrc name=src format=time caps={caps} ! " + tail, frames)
    for index, (a, b) in enumerate(zip(ours, plain)):
        rmeta = GstAnalytics.buffer_get_analytics_relation_meta(a.get_buffer())
        check(rmeta is not None and len(mtds_of(rmeta, GstAnalytics.ODMtd)) == len(boxes),
              f"frame {index}: not one detection per ROI")
        drawn = a.get_buffer().extract_dup(0, a.get_buffer().get_size())
        untouched = b.get_buffer().extract_dup(0, b.get_buffer().get_size())
        check(untouched == frames[index][0], f"frame {index}: overlay drew without our metadata")
        for roi_type, x, y, w, h in boxes:
            changed = sum(1 for row in range(y, y + h) for col in range(x, x + w)
                          if drawn[4 * (row * WIDTH + col):4 * (row * WIDTH + col) + 3]
                          != untouched[4 * (row * WIDTH + col):4 * (row * WIDTH + col) + 3])
            check(changed > 0, f"frame {index}: nothing drawn inside {roi_type}'s box")
            print(f"overlay: frame {index}, {roi_type} box {x},{y} {w}x{h}: {changed} pixels drawn")


def test_example(model, pipelines):
    labels = ["red", "green", "blue", "white", "black"]
    n_frames = 3
    proc = subprocess.run(
        [sys.executable, os.path.join(pipelines, "read_analytics.py"), "--model", model,
         "--device", "cpu", "--labels", ",".join(labels), "--stuff-labels", "white,black",
         "--source", f"videotestsrc num-buffers={n_frames} pattern=smpte "
         f"! video/x-raw,width={WIDTH},height={HEIGHT},framerate=30/1"],
        capture_output=True, text=True, timeout=100)
    check(proc.returncode == 0, f"read_analytics.py failed: {proc.stderr[-2000:]}")
    frames = [json.loads(line) for line in proc.stdout.splitlines()]
    check(len(frames) == n_frames, f"{len(frames)} frames printed")
    n_detections = 0
    for index, frame in enumerate(frames):
        tensors = [t for t in frame["tensors"] if t["id"] == "umgclip-embedding"]
        check(len(tensors) == 1, f"frame {index}: {len(tensors)} embedding tensors")
        check(len(tensors[0]["dims"]) == 2 and tensors[0]["dims"][0] == 1
              and tensors[0]["dims"][1] > 0, f"tensor dims {tensors[0]['dims']}")
        check(abs(tensors[0]["norm"] - 1) < 1e-4, f"embedding norm {tensors[0]['norm']}")
        segmentation = frame["segmentation"]
        check(segmentation is not None, f"frame {index}: no segmentation")
        w, h = segmentation["mask_size"]
        check(segmentation["location"] == [0, 0, WIDTH, HEIGHT], "mask location")
        check(sum(segmentation["pixels_per_region"].values()) == w * h, "mask pixel count")
        for region in segmentation["pixels_per_region"]:
            check(region == "0" or int(region) in segmentation["region_ids"],
                  f"frame {index}: mask pixel value {region} is no region id")
        check(len(segmentation["classifications"]) == len(segmentation["region_ids"]),
              "one classification per region")
        for detection in frame["detections"]:
            kinds = sorted(detection["classifications"], key=len)
            check(len(kinds) == 2 and len(kinds[0]) == 1 and len(kinds[1]) == len(labels),
                  f"frame {index}: classifications {kinds}")
            check(detection["type"] == kinds[0][0][0], "detection type is the segment label")
            check(all(name in labels for name, _ in kinds[1]), "tags are labels")
            n_detections += 1
    check(n_detections > 0, "no detection in any frame: nothing was checked")
    print(f"example: {n_frames} frames, {n_detections} detections, tensor dims "
          f"{frames[0]['tensors'][0]['dims']}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("part", choices=["python", "overlay", "example"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--pipelines", required=True, help="the pipelines/ folder")
    args = parser.parse_args()
    Gst.init(None)
    for factory in ["umgclipseg", "umgcliptag"] + (["objectdetectionoverlay"]
                                                   if args.part == "overlay" else []):
        if Gst.ElementFactory.find(factory) is None:
            print(f"SKIP: no {factory} element")
            return 77
    if args.part == "example":
        test_example(args.model, args.pipelines)
    else:
        {"python": test_python, "overlay": test_overlay}[args.part](args.model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
