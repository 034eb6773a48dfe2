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
    fails("bad boxes", "1,2,3", "encode-regions", MODEL, "--tensor", tensor, "--boxes", "1,2,3")
    fails("empty box", "0,0,0,5", "encode-regions", MODEL, "--tensor", tensor, "--boxes",
          "0,0,0,5")
    fails("unknown dense mode", "fancy", "encode-dense", MODEL, "--tensor", tensor, "--out",
          dense_path, "--dense-mode", "fancy")
    fails("dense without --out", "--out", "encode-dense", MODEL, "--tensor", tensor)
    fails("classify without labels", "--labels", "classify", MODEL, png, "--labels", " , ")
    fails("encode-text without text", "TEXT", "encode-text", MODEL)
    fails("bad iterations", "--iterations", "bench", MODEL, "--iterations", "zero")
    proc = subprocess.run([UMGCLIP, "info", MODEL, "--device", "gpu7"], capture_output=True,
                          text=True)
    check("unknown device", proc.returncode != 0 and "gpu7" in proc.stderr, proc.stderr)

finish()
