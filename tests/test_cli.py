#!/usr/bin/env python3
"""The umgclip command line: JSON on stdout for every command, and a non-zero exit with a
message naming the fault for bad input. Standard library only.

usage: test_cli.py UMGCLIP MODEL_DIR DEVICE
"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import zlib

from checks import check, finish

UMGCLIP, MODEL, DEVICE = sys.argv[1:4]


def run(*args, env=None):
    proc = subprocess.run([UMGCLIP, *args, "--device", DEVICE], capture_output=True, text=True,
                          timeout=300, env=env)
    return proc.returncode, proc.stdout, proc.stderr


def ok_json(name, *args, env=None):
    code, out, err = run(*args, env=env)
    check(name + " exits 0", code == 0, err)
    try:
        return json.loads(out)
    except ValueError:
        check(name + " prints JSON", False, out[:200])
        return None


def fails(name, fragment, *args, env=None):
    code, out, err = run(*args, env=env)
    check(name, code != 0 and fragment in err and out == "",
          "exit %d, stderr %r" % (code, err.strip()))


def write_png(path, width, height, pixel):
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))

    raw = b"".join(b"\0" + b"".join(bytes(pixel(x, y)) for x in range(width))
                   for y in range(height))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw)))
        f.write(chunk(b"IEND", b""))


def write_npy(path, shape, values):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % "".join(
        "%d, " % s for s in shape)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(struct.pack("<%df" % len(values), *values))


def read_npy(path):
    """(shape, values) of a little-endian float32 .npy file."""
    with open(path, "rb") as f:
        data = f.read()
    length = struct.unpack("<H", data[8:10])[0]
    header = data[10:10 + length].decode()
    shape = tuple(int(x) for x in header.split("(")[1].split(")")[0].split(",") if x.strip())
    values = struct.unpack("<%df" % (len(data[10 + length:]) // 4), data[10 + length:])
    return shape, values


def norm(v):
    return math.sqrt(sum(x * x for x in v))


with tempfile.TemporaryDirectory() as tmp:
    info = ok_json("info", "info", MODEL)
    embed = info["embed_dim"]
    size = info["vision"]["image_size"]
    patch = info["vision"]["patch_size"]
    check("info names the backend", DEVICE.split(":")[0] in info["backend"], info["backend"])

    tokens = ok_json("tokenize", "tokenize", MODEL, "a photo of a cat", "dog")
    check("tokenize ids", tokens["tokens"] == [[49406, 320, 1125, 539, 320, 2368, 49407],
                                                [49406, 1929, 49407]], tokens)

    texts = ok_json("encode-text", "encode-text", MODEL, "a red square", "a blue circle")
    check("encode-text shape", len(texts["embeddings"]) == 2
          and all(len(e) == embed for e in texts["embeddings"]))
    check("encode-text distinct texts differ", texts["embeddings"][0] != texts["embeddings"][1])
    normed = ok_json("encode-text --normalize", "encode-text", MODEL, "a red square", "--normalize")
    check("--normalize gives unit length", abs(norm(normed["embeddings"][0]) - 1) < 1e-5)
    check("--normalize keeps direction", abs(
        sum(a * b for a, b in zip(normed["embeddings"][0], texts["embeddings"][0]))
        - norm(texts["embeddings"][0])) < 1e-4 * norm(texts["embeddings"][0]))

    png = os.path.join(tmp, "stripes.png")
    write_png(png, 3 * size // 2, size, lambda x, y: (255 * (x // 5 % 2), 128, 40 * (y % 6)))
    image = ok_json("encode-image IMAGE", "encode-image", MODEL, png)
    check("encode-image length", len(image["embedding"]) == embed)

    tensor = os.path.join(tmp, "x.npy")
    values = [math.sin(i * 0.37) for i in range(3 * size * size)]
    write_npy(tensor, (1, 3, size, size), values)
    from_tensor = ok_json("encode-image --tensor", "encode-image", MODEL, "--tensor", tensor)
    check("image and tensor inputs differ", from_tensor["embedding"] != image["embedding"])

    dense_path = os.path.join(tmp, "dense.npy")
    dense = ok_json("encode-dense", "encode-dense", MODEL, "--tensor", tensor, "--out", dense_path,
                    "--dense-mode", "clearclip")
    check("encode-dense shape", dense["shape"] == [size // patch, size // patch, embed], dense)
    check("encode-dense file size", os.path.getsize(dense_path)
          == 128 + 4 * (size // patch) ** 2 * embed, os.path.getsize(dense_path))

    regions = ok_json("encode-regions", "encode-regions", MODEL, "--tensor", tensor, "--boxes",
                      "0,0,%d,%d; 2,2,5,5" % (size, size))
    check("encode-regions count", len(regions["embeddings"]) == 2)
    check("encode-regions unit length",
          all(abs(norm(e) - 1) < 1e-5 for e in regions["embeddings"]))
    # 8 boxes fill the planned region slots exactly (written straight into the output);
    # 2 boxes leave slots unused: the shared boxes must come out the same either way
    eight = ok_json("encode-regions, 8 boxes", "encode-regions", MODEL, "--tensor", tensor,
                    "--boxes", "0,0,%d,%d; 2,2,5,5" % (size, size)
                    + "".join("; %d,%d,4,4" % (i, i) for i in range(6)))
    check("encode-regions does not depend on the box count",
          len(eight["embeddings"]) == 8 and eight["embeddings"][:2] == regions["embeddings"])

    result = ok_json("classify", "classify", MODEL, png, "--labels", "cat, dog,car",
                     "--template", "a photo of a {}.", "--template", "a {} in the scene")
    scores = [r["score"] for r in result["results"]]
    check("classify labels", sorted(r["label"] for r in result["results"]) == ["car", "cat", "dog"])
    check("classify best first", scores == sorted(scores, reverse=True), scores)
    check("classify scores sum to 1", abs(sum(scores) - 1) < 1e-4, scores)

    # prompt-template=imagenet: OpenAI's 80 ImageNet templates, averaged; written out here
    # independently of the runtime's list
    imagenet = [
        "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.",
        "a photo of the hard to see {}.", "a low resolution photo of the {}.",
        "a rendering of a {}.", "graffiti of a {}.", "a bad photo of the {}.",
        "a cropped photo of the {}.", "a tattoo of a {}.", "the embroidered {}.",
        "a photo of a hard to see {}.", "a bright photo of a {}.", "a photo of a clean {}.",
        "a photo of a dirty {}.", "a dark photo of the {}.", "a drawing of a {}.",
        "a photo of my {}.", "the plastic {}.", "a photo of the cool {}.",
        "a close-up photo of a {}.", "a black and white photo of the {}.",
        "a painting of the {}.", "a painting of a {}.", "a pixelated photo of the {}.",
        "a sculpture of the {}.", "a bright photo of the {}.", "a cropped photo of a {}.",
        "a plastic {}.", "a photo of the dirty {}.", "a jpeg corrupted photo of a {}.",
        "a blurry photo of the {}.", "a photo of the {}.", "a good photo of the {}.",
        "a rendering of the {}.", "a {} in a video game.", "a photo of one {}.",
        "a doodle of a {}.", "a close-up photo of the {}.", "a photo of a {}.",
        "the origami {}.", "the {} in a video game.", "a sketch of a {}.",
        "a doodle of the {}.", "a origami {}.", "a low resolution photo of a {}.",
        "the toy {}.", "a rendition of the {}.", "a photo of the clean {}.",
        "a photo of a large {}.", "a rendition of a {}.", "a photo of a nice {}.",
        "a photo of a weird {}.", "a blurry photo of a {}.", "a cartoon {}.", "art of a {}.",
        "a sketch of the {}.", "a embroidered {}.", "a pixelated photo of a {}.",
        "itap of the {}.", "a jpeg corrupted photo of the {}.", "a good photo of a {}.",
        "a plushie {}.", "a photo of the nice {}.", "a photo of the small {}.",
        "a photo of the weird {}.", "the cartoon {}.", "art of the {}.",
        "a drawing of the {}.", "a photo of the large {}.", "a black and white photo of a {}.",
        "the plushie {}.", "a dark photo of a {}.", "itap of a {}.", "graffiti of the {}.",
        "a toy {}.", "itap of my {}.", "a photo of a cool {}.", "a photo of a small {}.",
        "a tattoo of the {}."]
    check("the reference lists 80 distinct templates", len(set(imagenet)) == 80)
    by_name = ok_json("classify --template imagenet", "classify", MODEL, png, "--labels",
                      "cat,dog,car", "--template", "imagenet")
    written = ok_json("classify with the 80 templates written out", "classify", MODEL, png,
                      "--labels", "cat,dog,car", *[a for t in imagenet for a in ("--template", t)])
    one_line = ok_json("classify with the 80 templates in one ';' list", "classify", MODEL, png,
                       "--labels", "cat,dog,car", "--template", ";".join(imagenet))
    check("imagenet equals the 80 templates written out",
          by_name is not None and by_name == written == one_line, (by_name, written))
    check("imagenet differs from a single template",
          by_name is not None and by_name != result, by_name)

    # segment: maps of the network input; per-label pixel counts are the segments' areas
    seg_labels = ["cat", "dog", "grass", "sky"]
    mask_path, inst_path = os.path.join(tmp, "mask.npy"), os.path.join(tmp, "inst.npy")
    semantic = ok_json("segment", "segment", MODEL, png, "--labels", ",".join(seg_labels),
                       "--out", mask_path)
    shape, mask = read_npy(mask_path)
    check("segment map covers the input", shape == (size, size)
          and (semantic["width"], semantic["height"]) == (size, size), (shape, semantic))
    check("segment map holds label ids or -1",
          all(v == -1 or v in range(len(seg_labels)) for v in mask))
    areas = {i: sum(1 for v in mask if v == i) for i in range(len(seg_labels))}
    check("semantic: one segment per label present, area as in the map",
          {s["label_id"]: s["area"] for s in semantic["segments"]}
          == {i: a for i, a in areas.items() if a}, (semantic, areas))
    check("semantic: labels by name", all(s["label"] == seg_labels[s["label_id"]]
                                          for s in semantic["segments"]))
    panoptic = ok_json("segment --panoptic", "segment", MODEL, png, "--labels",
                       ",".join(seg_labels), "--stuff", "grass, sky", "--panoptic", "--out",
                       mask_path, "--instances", inst_path)
    _, instances = read_npy(inst_path)
    _, mask = read_npy(mask_path)
    segments = panoptic["segments"]
    check("panoptic: stuff labels are not things",
          all(s["is_thing"] == (s["label"] in ("cat", "dog")) for s in segments), segments)
    check("panoptic: each segment's area is its pixels in the instance map",
          all(sum(1 for v in instances if v == s["id"]) == s["area"] for s in segments))
    check("panoptic: a segment's pixels carry its label in the class map",
          all(mask[i] == s["label_id"] for s in segments
              for i, v in enumerate(instances) if v == s["id"]))
    empty = ok_json("segment --threshold 1", "segment", MODEL, png, "--labels", "cat,dog",
                    "--threshold", "1", "--out", mask_path)
    _, mask = read_npy(mask_path)
    check("a threshold of 1 leaves every pixel unlabelled",
          empty["segments"] == [] and set(mask) == {-1.0}, empty)
    png_mask = os.path.join(tmp, "mask.png")
    ok_json("segment to PNG", "segment", MODEL, png, "--labels", "cat,dog", "--out", png_mask)
    with open(png_mask, "rb") as f:
        ihdr = f.read(24)
    check("segment PNG has the input's size",
          ihdr[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", ihdr[16:24]) == (size, size))

    # tag: the best label of a box is the label text nearest its region embedding
    tag_labels = ["cat", "dog", "car", "tree"]
    tagged = ok_json("tag", "tag", MODEL, png, "--labels", ",".join(tag_labels), "--boxes",
                     "0,0,%d,%d; 2,2,5,5" % (size, size), "--top-k", "3")
    label_texts = ok_json("encode-text labels", "encode-text", MODEL, "--normalize",
                          *["a photo of a %s." % t for t in tag_labels])["embeddings"]
    boxes = ok_json("encode-regions of the same boxes", "encode-regions", MODEL, png, "--boxes",
                    "0,0,%d,%d; 2,2,5,5" % (size, size))["embeddings"]
    check("tag: top-k tags per box, best first",
          len(tagged["regions"]) == 2 and all(
              len(r["tags"]) == 3 and [t["score"] for t in r["tags"]]
              == sorted((t["score"] for t in r["tags"]), reverse=True)
              for r in tagged["regions"]), tagged)
    for r, region in zip(tagged["regions"], boxes):
        nearest = max(tag_labels, key=lambda t: sum(
            a * b for a, b in zip(region, label_texts[tag_labels.index(t)])))
        check("tag: best tag is the nearest label text", r["tags"][0]["label"] == nearest,
              (r, nearest))

    # MODEL is optional: --model, else $UMGCLIP_MODEL, else the shipped model
    default = dict(os.environ, UMGCLIP_MODEL=MODEL)
    same = ok_json("info without MODEL", "info", env=default)
    check("info without MODEL takes $UMGCLIP_MODEL", same is not None and same["model"] == MODEL)
    same = ok_json("classify without MODEL", "classify", png, "--labels", "cat, dog,car",
                   "--template", "a photo of a {}.", "--template", "a {} in the scene",
                   env=default)
    check("classify without MODEL gives the same result", same == result, same)
    same = ok_json("encode-text without MODEL", "encode-text", "a red square", "a blue circle",
                   env=default)
    check("encode-text without MODEL gives the same result", same == texts, same)
    same = ok_json("encode-image --model", "encode-image", "--model", MODEL, png)
    check("--model names the model", same == image)
    fails("a default model that is missing", "/nonexistent/default", "info",
          env=dict(os.environ, UMGCLIP_MODEL="/nonexistent/default"))

    bench = ok_json("bench", "bench", MODEL, "--iterations", "2")
    check("bench reports times", bench["image_ms"] > 0 and bench["text_ms"] > 0, bench)

    # bad input: an error naming the fault, nothing on stdout
    fails("missing model directory", "/nonexistent/model", "info", "/nonexistent/model")
    fails("unknown command", "frobnicate", "frobnicate", MODEL)
    fails("missing tensor file", "missing.npy", "encode-image", MODEL, "--tensor",
          os.path.join(tmp, "missing.npy"))
    bad_shape = os.path.join(tmp, "bad.npy")
    write_npy(bad_shape, (3, size, size), values)
    fails("tensor of the wrong shape", "bad.npy", "encode-image", MODEL, "--tensor", bad_shape)
    not_npy = os.path.join(tmp, "text.npy")
    with open(not_npy, "w") as f:
        f.write("hello")
    fails("tensor that is not .npy", "text.npy", "encode-image", MODEL, "--tensor", not_npy)
    fails("image that is not an image", "text.npy", "encode-image", MODEL, not_npy)
    # 2^30 x 2^30 x 4 elements wrapped to 0 bytes and passed the size check
    wrapping = os.path.join(tmp, "wrapping.npy")
    write_npy(wrapping, (1073741824, 1073741824, 4), [])
    fails("tensor whose shape overflows", "wrapping.npy: shape (1073741824, 1073741824, 4",
          "encode-image", MODEL, "--tensor", wrapping)
    fails("bad boxes", "1,2,3", "encode-regions", MODEL, "--tensor", tensor, "--boxes", "1,2,3")
    fails("empty box", "0,0,0,5", "encode-regions", MODEL, "--tensor", tensor, "--boxes",
          "0,0,0,5")
    fails("unknown dense mode", "fancy", "encode-dense", MODEL, "--tensor", tensor, "--out",
          dense_path, "--dense-mode", "fancy")
    fails("dense without --out", "--out", "encode-dense", MODEL, "--tensor", tensor)
    fails("classify without labels", "--labels", "classify", MODEL, png, "--labels", " , ")
    # Latin-1 "café": the byte 0xe9 reaches the program as it is (surrogateescape)
    fails("labels that are not UTF-8", "--labels is not UTF-8 text: byte 0xe9 at offset 7",
          "classify", MODEL, png, "--labels", "dog,caf\udce9")
    fails("encode-text without text", "TEXT", "encode-text", MODEL)
    fails("bad iterations", "--iterations", "bench", MODEL, "--iterations", "zero")
    fails("segment without --out", "--out", "segment", MODEL, png, "--labels", "cat")
    fails("segment without labels", "--labels", "segment", MODEL, png, "--out", mask_path)
    fails("segment with a threshold above 1", "--threshold", "segment", MODEL, png, "--labels",
          "cat", "--out", mask_path, "--threshold", "1.5")
    fails("segment with a negative min-area", "--min-area", "segment", MODEL, png, "--labels",
          "cat", "--out", mask_path, "--min-area", "-2")
    fails("segment with a thing-affinity below -1", "--thing-affinity needs a number from -1 to 2",
          "segment", MODEL, png, "--labels", "cat", "--out", mask_path, "--thing-affinity", "-3")
    fails("segment with a thing-affinity that is no number", "--thing-affinity", "segment", MODEL,
          png, "--labels", "cat", "--out", mask_path, "--thing-affinity", "near")
    fails("segment to an unwritable place", "/nonexistent/dir", "segment", MODEL, png,
          "--labels", "cat", "--out", "/nonexistent/dir/mask.png")
    fails("tag without boxes", "boxes", "tag", MODEL, png, "--labels", "cat")
    proc = subprocess.run([UMGCLIP, "info", MODEL, "--device", "gpu7"], capture_output=True,
                          text=True)
    check("unknown device", proc.returncode != 0 and "gpu7" in proc.stderr, proc.stderr)

finish()
