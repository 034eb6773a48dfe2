#!/usr/bin/python3
"""The shipped model through the GStreamer elements, measured on generated held-out scenes.

Held-out scenes (training/scenes.py: colour-shape pairs never seen in training) are pushed
through appsrc into two pipelines, on the CPU with threshold 0:

  A: umgclipseg mode=semantic ! umgcliptag inference-region=roi-list, each frame carrying one
     region-of-interest meta per ground-truth thing box: region tag top-1 and semantic mIoU;
  B: umgclipseg mode=panoptic min-area=8: panoptic quality (PQ).

The metrics are computed here in numpy from the buffers' metadata, and must
  - agree with umgclip-eval (the C evaluator) on the same scenes within --tolerance, and
  - reach the floors given on the command line.
Along the way the metadata is checked: the ground-truth ROIs come back tagged with their
boxes unchanged, semantic mode adds no ROIs, panoptic mode adds one per thing segment, the
maps are 64x64 over the labels set, and the segment table's areas, boxes and is-thing agree
with the instance map and stuff-labels.

usage: test_shipped_model.py --model DIR --eval UMGCLIP_EVAL [--count N] [--seed S]
           [--dense-mode M] --min-region-top1 X --min-miou X --min-pq X [--tolerance T]
Exit 0 on success, 1 on a failed check, 77 (skipped) without PyGObject's GStreamer bindings.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
except ImportError as error:
    print("SKIP: numpy is missing for %s: %s" % (sys.executable, error))
    sys.exit(77)

SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SOURCE_ROOT, "training"))
import scenes  # noqa: E402

try:
    import gi
    gi.require_version("Gst", "1.0")
    gi.require_version("GstApp", "1.0")
    gi.require_version("GstVideo", "1.0")
    # GstApp gives appsink its try_pull_sample method
    from gi.repository import GLib, Gst, GstApp, GstVideo  # noqa: E402,F401
except (ImportError, ValueError) as error:
    print("SKIP: PyGObject with GStreamer (python3-gst-1.0) is missing for %s: %s"
          % (sys.executable, error))
    sys.exit(77)

SIZE = scenes.IMAGE_SIZE
THING_TAGS = scenes.THING_TAGS
LABELS = THING_TAGS + scenes.STUFF  # the vocabulary L; label ids index it
PANOPTIC_MIN_AREA = 8
PULL_TIMEOUT = 60 * Gst.SECOND


class CheckFailed(Exception):
    pass


def require(condition, message):
    if not condition:
        raise CheckFailed(message)


# ---- running the elements ----------------------------------------------------------------

def run_pipeline(analysis, frames):
    """Pushes (image, boxes) frames through appsrc ! ANALYSIS ! appsink; returns the buffers.
    Each box becomes a region-of-interest meta of type "thing" whose id is its index."""
    pipeline = Gst.parse_launch(
        "appsrc name=src format=time caps=video/x-raw,format=RGB,width=%d,height=%d,"
        "framerate=30/1 ! %s ! appsink name=sink sync=false" % (SIZE, SIZE, analysis))
    source, sink = pipeline.get_by_name("src"), pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    for index, (image, boxes) in enumerate(frames):
        buffer = Gst.Buffer.new_wrapped(np.ascontiguousarray(image).tobytes())
        buffer.pts = index * Gst.SECOND // 30
        buffer.duration = Gst.SECOND // 30
        for roi_id, (x, y, w, h) in enumerate(boxes):
            roi = GstVideo.buffer_add_video_region_of_interest_meta(buffer, "thing", x, y, w, h)
            roi.id = roi_id
        source.emit("push-buffer", buffer)
    source.emit("end-of-stream")
    buffers = []
    while len(buffers) < len(frames):
        sample = sink.try_pull_sample(PULL_TIMEOUT)
        if sample is None:
            break
        buffers.append(sample.get_buffer())
    error = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    require(error is None, "pipeline %r failed: %s" % (analysis, error and error.parse_error()[0]))
    require(len(buffers) == len(frames),
            "pipeline %r gave %d of %d frames" % (analysis, len(buffers), len(frames)))
    return buffers


def value_list(structure, field):
    array = structure.get_value(field)
    return [array[i] for i in range(len(array))]


def map_array(gst_buffer, dtype):
    ok, info = gst_buffer.map(Gst.MapFlags.READ)
    require(ok, "cannot map a map buffer")
    array = np.frombuffer(bytes(info.data), dtype=dtype).copy()
    gst_buffer.unmap(info)
    return array.reshape(SIZE, SIZE)


def read_segmentation(buffer, panoptic):
    """(class map, instance map or None, segment table) of the "UmgClipSegmentation" meta."""
    custom = buffer.get_custom_meta("UmgClipSegmentation")
    require(custom is not None, "a frame without the UmgClipSegmentation meta")
    structure = custom.get_structure()
    require((structure.get_value("width"), structure.get_value("height")) == (SIZE, SIZE),
            "mask is %sx%s, not %dx%d (mask-size=%d)" % (structure.get_value("width"),
                                                      structure.get_value("height"),
                                                      SIZE, SIZE, SIZE))
    require(value_list(structure, "labels") == LABELS, "the meta's labels are not the ones set")
    class_map = map_array(structure.get_value("class-map"), np.uint8).astype(np.int64)
    segments = [{"id": s.get_value("id"), "label_id": s.get_value("label-id"),
                 "is_thing": s.get_value("is-thing"), "area": s.get_value("area"),
                 "box": (s.get_value("x"), s.get_value("y"), s.get_value("width"),
                         s.get_value("height"))}
                for s in value_list(structure, "segments")]
    require(structure.has_field("instance-map") == panoptic,
            "instance-map present: %s in %s mode" % (structure.has_field("instance-map"),
                                                     "panoptic" if panoptic else "semantic"))
    instance_map = (map_array(structure.get_value("instance-map"), "<u2").astype(np.int64)
                    if panoptic else None)
    return class_map, instance_map, segments


def read_roi_tags(buffer, scene):
    """The best tag of each ground-truth thing's ROI (found by the id it was pushed with)."""
    tags = []
    for roi_id, thing in enumerate(scene.things):
        roi = GstVideo.buffer_get_video_region_of_interest_meta_id(buffer, roi_id)
        require(roi is not None, "ROI %d of a frame is gone" % roi_id)
        require((roi.x, roi.y, roi.w, roi.h) == thing.box,
                "ROI %d has box %s, pushed %s" % (roi_id, (roi.x, roi.y, roi.w, roi.h), thing.box))
        params = roi.get_param("umgclip")
        require(params is not None, "ROI %d was not tagged" % roi_id)
        tags.append(params.get_value("label"))
    extra = GstVideo.buffer_get_video_region_of_interest_meta_id(buffer, len(scene.things))
    require(extra is None, "a frame has more ROIs than its %d ground-truth things (one of type "
            "%r): semantic umgclipseg should add none" % (
                len(scene.things), extra and GLib.quark_to_string(extra.roi_type)))
    return tags


# ---- metrics --------------------------------------------------------------------------------

def ground_truth_map(scene):
    """Label id (index into LABELS) per pixel."""
    label_map = np.full((SIZE, SIZE), -1, dtype=np.int64)
    for stuff in scene.stuff:
        label_map[stuff.mask] = LABELS.index(stuff.name)
    for thing in scene.things:
        label_map[thing.mask] = LABELS.index(scenes.thing_tag(thing.colour, thing.shape))
    return label_map


def mean_iou(pairs):
    """Semantic mIoU over (ground-truth map, predicted class map) pairs, pooled over scenes;
    predicted ids outside LABELS (the "none" value) count as no label."""
    n = len(LABELS)
    intersection, gt_area, predicted_area = np.zeros(n), np.zeros(n), np.zeros(n)
    for gt, predicted in pairs:
        valid = predicted < n
        intersection += np.bincount(gt[gt == predicted], minlength=n)[:n]
        gt_area += np.bincount(gt.ravel(), minlength=n)[:n]
        predicted_area += np.bincount(predicted[valid], minlength=n)[:n]
    union = gt_area + predicted_area - intersection
    present = gt_area + predicted_area > 0
    return float(np.mean(intersection[present] / union[present]))


def ground_truth_segments(scene):
    return ([(LABELS.index(scenes.thing_tag(t.colour, t.shape)), t.mask) for t in scene.things]
            + [(LABELS.index(s.name), s.mask) for s in scene.stuff])


def bounding_box(mask):
    """(x, y, w, h) of a mask's pixels, None when it is empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
            int(ys.max() - ys.min() + 1))


def check_thing_rois(buffer, segments):
    """Panoptic mode attaches one ROI per thing segment, labelled and boxed as the segment."""
    things = [s for s in segments if s["is_thing"]]
    for roi_id, segment in enumerate(things):
        roi = GstVideo.buffer_get_video_region_of_interest_meta_id(buffer, roi_id)
        require(roi is not None,
                "panoptic: %d thing segments but no ROI %d" % (len(things), roi_id))
        box = (roi.x, roi.y, roi.w, roi.h)
        label = roi.get_param("umgclip").get_value("label")
        require((label, box) == (LABELS[segment["label_id"]], segment["box"]),
                "panoptic: ROI %d is %s %s, its segment %s %s" % (
                    roi_id, label, box, LABELS[segment["label_id"]], segment["box"]))
    require(GstVideo.buffer_get_video_region_of_interest_meta_id(buffer, len(things)) is None,
            "panoptic: more ROIs than the %d thing segments" % len(things))


def predicted_segments(instance_map, segments):
    """(label id, mask) per entry of the segment table, checked against the instance map (the
    mask is the frame's size, so areas and boxes are the same in both)."""
    result = []
    for segment in segments:
        mask = instance_map == segment["id"]
        require(int(mask.sum()) == segment["area"],
                "segment %d has area %d in the table, %d in the instance map"
                % (segment["id"], segment["area"], int(mask.sum())))
        require(bounding_box(mask) == segment["box"],
                "segment %d has box %s in the table, %s in the instance map"
                % (segment["id"], segment["box"], bounding_box(mask)))
        require(segment["is_thing"] == (segment["label_id"] < len(THING_TAGS)),
                "segment %d (%s) has is-thing %s" % (segment["id"], LABELS[segment["label_id"]],
                                                     segment["is_thing"]))
        result.append((segment["label_id"], mask))
    return result


def panoptic_quality(scene_segments):
    """PQ over (ground-truth segments, predicted segments) per scene, each a list of
    (label id, mask): returns pq, pq_things, pq_stuff."""
    n = len(LABELS)
    tp, fp, fn, iou_sum = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    for gt_list, predicted_list in scene_segments:
        matched = set()
        for label, gt_mask in gt_list:
            for p, (p_label, p_mask) in enumerate(predicted_list):
                if p_label != label or p in matched:
                    continue
                iou = (gt_mask & p_mask).sum() / (gt_mask | p_mask).sum()
                if iou > 0.5:
                    matched.add(p)
                    tp[label] += 1
                    iou_sum[label] += iou
                    break
            else:
                fn[label] += 1
        for p, (p_label, _) in enumerate(predicted_list):
            if p not in matched:
                fp[p_label] += 1
    present = tp + fp + fn > 0
    pq = np.where(present, iou_sum / np.maximum(tp + fp / 2 + fn / 2, 1e-12), 0.0)
    is_thing = np.arange(n) < len(THING_TAGS)

    def mean_over(selection):
        chosen = present & selection
        return float(pq[chosen].mean()) if chosen.any() else 0.0

    return mean_over(np.ones(n, bool)), mean_over(is_thing), mean_over(~is_thing)


# ---- the measurement ------------------------------------------------------------------------

def element_options(args):
    return 'model="%s" device=cpu dense-mode=%s threshold=0' % (args.model, args.dense_mode)


def measure_elements(args, scene_list):
    common = element_options(args)
    frames = [(scene.image, [thing.box for thing in scene.things]) for scene in scene_list]
    tagged = run_pipeline(
        'umgclipseg mode=semantic labels="%s" mask-size=%d min-area=0 %s '
        '! umgcliptag inference-region=roi-list labels="%s" top-k=1 %s'
        % (",".join(LABELS), SIZE, common, ",".join(THING_TAGS), common), frames)
    panoptic = run_pipeline(
        'umgclipseg mode=panoptic labels="%s" stuff-labels="%s" mask-size=%d min-area=%d %s'
        % (",".join(LABELS), ",".join(scenes.STUFF), SIZE, PANOPTIC_MIN_AREA, common),
        [(image, []) for image, _ in frames])

    hits = total = 0
    semantic_pairs, scene_segments = [], []
    for scene, a, b in zip(scene_list, tagged, panoptic):
        tags = read_roi_tags(a, scene)
        hits += sum(tag == scenes.thing_tag(t.colour, t.shape)
                    for tag, t in zip(tags, scene.things))
        total += len(scene.things)
        class_map, _, _ = read_segmentation(a, panoptic=False)
        semantic_pairs.append((ground_truth_map(scene), class_map))
        _, instance_map, segments = read_segmentation(b, panoptic=True)
        check_thing_rois(b, segments)
        scene_segments.append((ground_truth_segments(scene),
                               predicted_segments(instance_map, segments)))
    pq, pq_things, pq_stuff = panoptic_quality(scene_segments)
    return {"region_top1": hits / total, "miou": mean_iou(semantic_pairs), "pq": pq,
            "pq_things": pq_things, "pq_stuff": pq_stuff}


def measure_eval(args, data_dir):
    command = [args.eval, args.model, data_dir, "--device", "cpu",
               "--dense-mode", args.dense_mode, "--min-area", str(PANOPTIC_MIN_AREA)]
    result = subprocess.run(command, capture_output=True, text=True)
    require(result.returncode == 0, "%s failed (%d): %s" % (" ".join(command), result.returncode,
                                                            result.stderr.strip()))
    report = json.loads(result.stdout)
    require(report["scenes"] == args.count,
            "umgclip-eval saw %s scenes, not %d" % (report["scenes"], args.count))
    return report["modes"][args.dense_mode]


def default_dense_mode():
    element = Gst.ElementFactory.make("umgclipseg")
    require(element is not None, "umgclipseg is not registered (GST_PLUGIN_PATH=%s)"
            % os.environ.get("GST_PLUGIN_PATH", ""))
    # a new element's value is the default; the property's default_value is an enum value in
    # PyGObject 3.42 (Debian 12) but a bare int in 3.50 (Debian 13)
    return element.get_property("dense-mode").value_nick


def write_scenes(args, data_dir):
    """The same scenes as files for umgclip-eval, written by scenes.py itself."""
    subprocess.run([sys.executable, os.path.join(SOURCE_ROOT, "training", "scenes.py"),
                    "--split", "heldout", "--count", str(args.count), "--seed", str(args.seed),
                    "--out", data_dir], check=True)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--eval", required=True, help="the umgclip-eval program")
    parser.add_argument("--count", type=int, default=48)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dense-mode", default=None, help="default: the elements' default")
    parser.add_argument("--min-region-top1", type=float, required=True)
    parser.add_argument("--min-miou", type=float, required=True)
    parser.add_argument("--min-pq", type=float, required=True)
    # umgclip-eval prints 4 decimals; the elements and the evaluator compute the same values
    parser.add_argument("--tolerance", type=float, default=0.0002)
    return parser.parse_args()


def main():
    args = parse_args()
    Gst.init(None)
    start = time.monotonic()
    try:
        require(os.path.isfile(os.path.join(args.model, "config.json")),
                "no model at %s (config.json missing)" % args.model)
        args.dense_mode = args.dense_mode or default_dense_mode()
        scene_list = [scenes.generate("heldout", args.seed, i) for i in range(args.count)]
        measured = measure_elements(args, scene_list)
        print(json.dumps({"model": args.model, "dense_mode": args.dense_mode,
                          "scenes": args.count, "elements": measured}), flush=True)
        require(os.access(args.eval, os.X_OK), "umgclip-eval not found at %s" % args.eval)
        with tempfile.TemporaryDirectory(prefix="umgclip-heldout-") as data_dir:
            write_scenes(args, data_dir)
            evaluated = measure_eval(args, data_dir)
        print(json.dumps({"umgclip-eval": evaluated,
                          "seconds": round(time.monotonic() - start, 1)}), flush=True)
        failures = []
        for metric in ["region_top1", "miou", "pq"]:
            if abs(measured[metric] - evaluated[metric]) > args.tolerance:
                failures.append("%s: elements %.4f, umgclip-eval %.4f (tolerance %.4f)"
                                % (metric, measured[metric], evaluated[metric], args.tolerance))
        for metric, floor in [("region_top1", args.min_region_top1), ("miou", args.min_miou),
                              ("pq", args.min_pq)]:
            if measured[metric] < floor:
                failures.append("%s %.4f is below its floor %.4f"
                                % (metric, measured[metric], floor))
        require(not failures, "; ".join(failures))
    except CheckFailed as failure:
        print("FAIL:", failure)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
