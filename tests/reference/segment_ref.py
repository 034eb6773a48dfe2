#!/usr/bin/python3
"""NumPy reference for umgclip_segment (bilinear logit upsampling, softmax, threshold,
8-connected thing instances, merged stuff, joined things, min_area) and the bilinear resize
golden for umgclip_frame_to_tensor. Writes the small .npy goldens in tests/data/segment/ that
test_segment and test_frame read:

    /usr/bin/python3 tests/reference/segment_ref.py --write tests/data/segment
    /usr/bin/python3 tests/reference/segment_ref.py --check tests/data/segment

Segmentation needs NumPy only. The frame golden is made with PyTorch's F.interpolate when
torch is importable (and the NumPy resize is checked against it); --check skips it without.
"""
import argparse
import os
import sys

import numpy as np

NONE = 0xFFFF
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def bilinear_taps(in_size, out_size):
    """F.interpolate(mode="bilinear", align_corners=False) source taps, in float32 as torch."""
    scale = np.float32(in_size) / np.float32(out_size)
    source = scale * (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)
    source = np.maximum(source, np.float32(0))
    lo = np.minimum(source.astype(np.int64), in_size - 1)
    hi = np.where(lo < in_size - 1, lo + 1, lo)
    frac = np.minimum(source - lo, np.float32(1))
    return lo, hi, frac.astype(np.float32)


def resize_bilinear(planes, out_h, out_w):
    """planes: [C, H, W] -> [C, out_h, out_w]."""
    lo_y, hi_y, fy = bilinear_taps(planes.shape[1], out_h)
    lo_x, hi_x, fx = bilinear_taps(planes.shape[2], out_w)
    fx = fx[None, None, :]
    fy = fy[None, :, None]
    top = (1 - fx) * planes[:, lo_y][:, :, lo_x] + fx * planes[:, lo_y][:, :, hi_x]
    bottom = (1 - fx) * planes[:, hi_y][:, :, lo_x] + fx * planes[:, hi_y][:, :, hi_x]
    return (1 - fy) * top + fy * bottom


def mask_pool(dense, member, mask_w, mask_h):
    """umgclip_mask_pool for one region: every pixel where member is true adds the bilinear
    weights of its position on the cell grid; the weighted sum of cells, L2-normalised."""
    grid_h, grid_w, dim = dense.shape
    weights = np.zeros((grid_h, grid_w), np.float64)
    for my, mx in zip(*np.nonzero(member)):
        cy = min(max((my + 0.5) * grid_h / mask_h - 0.5, 0.0), grid_h - 1.0)
        cx = min(max((mx + 0.5) * grid_w / mask_w - 0.5, 0.0), grid_w - 1.0)
        y0, x0 = int(cy), int(cx)
        y1, x1 = min(y0 + 1, grid_h - 1), min(x0 + 1, grid_w - 1)
        wy, wx = cy - y0, cx - x0
        weights[y0, x0] += (1 - wy) * (1 - wx)
        weights[y0, x1] += (1 - wy) * wx
        weights[y1, x0] += wy * (1 - wx)
        weights[y1, x1] += wy * wx
    pooled = (weights.reshape(-1, 1) * dense.reshape(-1, dim).astype(np.float64)).sum(0)
    return pooled / np.linalg.norm(pooled)


def thing_features(dense, segment_of, segments, mask_w, mask_h):
    """Each thing segment's mean cell (cells L2-normalised, the nearest cell of each pixel)
    less the frame's mean cell, normalised; None for stuff."""
    grid_h, grid_w, dim = dense.shape
    cells = dense.reshape(-1, dim).astype(np.float64)
    cells = cells / np.linalg.norm(cells, axis=1, keepdims=True)
    frame_mean = cells.mean(0)
    features = []
    for sid, (label, thing, pixels) in enumerate(segments, 1):
        if not thing:
            features.append(None)
            continue
        ys, xs = np.nonzero(segment_of == sid)
        nearest = (ys * grid_h // mask_h) * grid_w + xs * grid_w // mask_w
        mean = cells[nearest].mean(0) - frame_mean
        features.append(mean / np.linalg.norm(mean))
    return features


def join_things(dense, segment_of, segments, mask_w, mask_h, affinity):
    """Union of thing segments that touch (8-connected), or face each other across at most
    half a grid cell of pixels no label reached, and whose centred features have a cosine of
    at least affinity. Returns each segment's root (1-based ids) and the cosines compared."""
    grid_w = dense.shape[1]
    gap = max(1, int(np.floor(0.5 * mask_w / grid_w + 0.5)))
    features = thing_features(dense, segment_of, segments, mask_w, mask_h)
    parent = list(range(len(segments) + 1))
    cosines = []

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for y in range(mask_h):
        for x in range(mask_w):
            a = segment_of[y, x]
            if a == 0 or not segments[a - 1][1]:
                continue
            near_none = (segment_of[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2] == 0).any()
            reach = gap if near_none else 1
            window = segment_of[max(y - reach, 0):y + reach + 1, max(x - reach, 0):x + reach + 1]
            for b in sorted(set(window.reshape(-1).tolist())):
                if b <= a or not segments[b - 1][1]:
                    continue
                ra, rb = root(a), root(b)
                if ra == rb:
                    continue
                cosine = float(features[a - 1] @ features[b - 1])
                cosines.append(cosine)
                if cosine >= affinity:
                    parent[max(ra, rb)] = min(ra, rb)
    return [root(i) for i in range(len(segments) + 1)], cosines


def segment(dense, labels, is_thing, logit_scale, mask_w, mask_h, threshold, min_area, panoptic,
            thing_affinity=2.0):
    grid_h, grid_w, _ = dense.shape
    cells = dense.reshape(-1, dense.shape[2]).astype(np.float64)
    cells = cells / np.linalg.norm(cells, axis=1, keepdims=True)
    logits = (logit_scale * cells @ labels.astype(np.float64).T).astype(np.float32)
    logit_maps = logits.T.reshape(len(labels), grid_h, grid_w)
    upsampled = resize_bilinear(logit_maps, mask_h, mask_w).astype(np.float64)
    probabilities = np.exp(upsampled - upsampled.max(axis=0, keepdims=True))
    probabilities /= probabilities.sum(axis=0, keepdims=True)
    best = probabilities.argmax(axis=0)
    score = probabilities.max(axis=0)
    ranked = np.sort(probabilities, axis=0)
    margin = ranked[-1] - ranked[-2] if len(labels) > 1 else np.ones_like(score)
    class_map = np.where(score >= threshold, best, NONE)

    # raster scan: segments are numbered by their first pixel
    segment_of = np.zeros((mask_h, mask_w), np.int64)
    segments = []  # [label, is_thing, pixels]
    stuff_segment = {}
    for y in range(mask_h):
        for x in range(mask_w):
            label = class_map[y, x]
            if label == NONE or segment_of[y, x]:
                continue
            if panoptic and is_thing[label]:
                segments.append([label, True, []])
                sid = len(segments)
                segment_of[y, x] = sid
                stack = [(y, x)]
                while stack:
                    py, px = stack.pop()
                    segments[-1][2].append((py, px))
                    for ny in range(max(py - 1, 0), min(py + 2, mask_h)):
                        for nx in range(max(px - 1, 0), min(px + 2, mask_w)):
                            if segment_of[ny, nx] == 0 and class_map[ny, nx] == label:
                                segment_of[ny, nx] = sid
                                stack.append((ny, nx))
            else:
                if label not in stuff_segment:
                    segments.append([label, False, []])
                    stuff_segment[label] = len(segments)
                segment_of[y, x] = stuff_segment[label]
                segments[stuff_segment[label] - 1][2].append((y, x))

    joined, cosines, label_margins = set(), [], []
    if panoptic and thing_affinity <= 1.0:
        roots, cosines = join_things(dense, segment_of, segments, mask_w, mask_h, thing_affinity)
        for sid in range(len(segments), 0, -1):
            if roots[sid] != sid:
                target = segments[roots[sid] - 1]
                target[2] = segments[sid - 1][2] + target[2]
                segments[sid - 1][2] = []
                joined.add(roots[sid])
        segment_of = np.array(roots)[segment_of]
        for sid in joined:
            # labelled as umgcliptag tags a segment: the nearest thing label to its mask pooling
            pooled = mask_pool(dense, segment_of == sid, mask_w, mask_h)
            cos = labels.astype(np.float64) @ pooled / np.linalg.norm(labels, axis=1)
            things = sorted((c, l) for l, c in enumerate(cos) if is_thing[l])
            label_margins.append(things[-1][0] - things[-2][0])
            segments[sid - 1][0] = things[-1][1]
            class_map[segment_of == sid] = things[-1][1]

    instance_map = np.zeros((mask_h, mask_w), np.int64)
    table = []
    for label, thing, pixels in segments:
        if not pixels:
            continue
        if len(pixels) < min_area:
            for py, px in pixels:
                class_map[py, px] = NONE
            continue
        ys = np.array([p[0] for p in pixels])
        xs = np.array([p[1] for p in pixels])
        sid = len(table) + 1
        instance_map[ys, xs] = sid
        table.append([sid, label, score[ys, xs].mean(), float(thing), xs.min(), ys.min(),
                      xs.max() - xs.min() + 1, ys.max() - ys.min() + 1, len(pixels)])
    return dict(
        class_map=class_map.astype(np.int32),
        score_map=score.astype(np.float32),
        instance_map=instance_map.astype(np.int32),
        segments=np.array(table, np.float32).reshape(-1, 9),
        margin=margin,
        score64=score,
        joined=len(joined),
        cosines=cosines,
        label_margins=label_margins,
    )


SEGMENT_CASES = {
    # name: (panoptic, threshold, min_area, thing_affinity); above 1 joins nothing
    "panoptic": (True, 0.6, 12, 2.0),
    "semantic": (False, 0.0, 0, 2.0),
    # 3 of the thing fragments' joins pass (cosines -0.254 to -0.067), 4 do not (-0.453 to
    # -0.409): 9 segments become 7
    "joined": (True, 0.6, 12, -0.3),
}


def segment_inputs():
    """Blobby random scene: cells near a random label's embedding, plus noise. The first seed
    whose every pixel is decided by a clear margin (so float32 vs float64 rounding cannot flip
    a class or a threshold test) is used."""
    for seed in range(100):
        rng = np.random.default_rng(seed)
        grid_h, grid_w, dim, n_labels = 6, 8, 16, 5
        labels = rng.standard_normal((n_labels, dim))
        labels /= np.linalg.norm(labels, axis=1, keepdims=True)
        owner = rng.integers(0, n_labels, (grid_h, grid_w))
        dense = 3.0 * labels[owner] + 1.2 * rng.standard_normal((grid_h, grid_w, dim))
        dense = dense.astype(np.float32)
        labels = labels.astype(np.float32)
        is_thing = np.array([1, 0, 1, 0, 1], np.int32)
        params = np.array([12.0, 37, 29], np.float32)  # logit_scale, mask_w, mask_h
        ok = True
        for panoptic, threshold, min_area, affinity in SEGMENT_CASES.values():
            result = segment(dense, labels, is_thing, params[0], 37, 29, threshold, min_area,
                             panoptic, affinity)
            if result["margin"].min() < 2e-4 or np.abs(result["score64"] - threshold).min() < 2e-4:
                ok = False
            # nor a join test or the label of a joined thing
            if min([abs(c - affinity) for c in result["cosines"]]
                   + list(result["label_margins"]) + [1.0]) < 1e-3:
                ok = False
        if ok:
            return dict(dense=dense, labels=labels, is_thing=is_thing, params=params)
    sys.exit("no seed gives clear margins")


def segment_goldens():
    inputs = segment_inputs()
    files = {"seg_" + k + ".npy": v for k, v in inputs.items()}
    for name, (panoptic, threshold, min_area, affinity) in SEGMENT_CASES.items():
        params = inputs["params"]
        result = segment(inputs["dense"], inputs["labels"], inputs["is_thing"], params[0],
                         int(params[1]), int(params[2]), threshold, min_area, panoptic, affinity)
        files["seg_%s_options.npy" % name] = np.array(
            [float(panoptic), threshold, min_area, affinity], np.float32)
        for key in ("class_map", "score_map", "instance_map", "segments"):
            files["seg_%s_%s.npy" % (name, key)] = result[key]
    return files


def frame_goldens():
    """An RGB frame resized down and up by torch, normalised with CLIP's statistics."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(7)
    frame = rng.integers(0, 256, (23, 37, 3)).astype(np.int32)  # height, width, RGB
    files = {"frame_rgb.npy": frame}
    planes = torch.from_numpy(frame.astype(np.float32).transpose(2, 0, 1)[None] / 255.0)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    for name, (out_h, out_w) in (("down", (11, 16)), ("up", (31, 50))):
        resized = F.interpolate(planes, size=(out_h, out_w), mode="bilinear",
                                align_corners=False, antialias=False)
        mine = resize_bilinear(planes[0].numpy(), out_h, out_w)
        assert np.abs(mine - resized[0].numpy()).max() < 1e-5, "numpy resize disagrees with torch"
        files["frame_%s.npy" % name] = ((resized - mean) / std)[0].numpy().astype(np.float32)
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", metavar="DIR")
    group.add_argument("--check", metavar="DIR")
    args = parser.parse_args()

    files = segment_goldens()
    try:
        files.update(frame_goldens())
    except ImportError:
        if args.write:
            sys.exit("the frame golden needs torch (/usr/bin/python3 has it on Debian)")
        print("torch missing: frame golden not checked")

    if args.write:
        os.makedirs(args.write, exist_ok=True)
        for name, array in files.items():
            np.save(os.path.join(args.write, name), np.ascontiguousarray(array))
        print("wrote %d files to %s" % (len(files), args.write))
        return
    stale = []
    largest = 0.0
    for name, array in files.items():
        committed = np.load(os.path.join(args.check, name))
        # torch builds round the resize differently: the goldens come from torch 1.13
        # (Debian 12); Debian 13's torch 2.6 gives them within 5.2e-06 (what this prints there)
        if committed.shape != array.shape or not np.allclose(committed, array, rtol=1e-5,
                                                             atol=1e-5):
            stale.append(name)
        elif committed.size:
            largest = max(largest, float(np.abs(committed.astype(np.float64) - array).max()))
    if stale:
        sys.exit("stale goldens (rerun with --write): " + ", ".join(stale))
    print("%d goldens up to date (largest difference %.2g)" % (len(files), largest))


if __name__ == "__main__":
    main()
