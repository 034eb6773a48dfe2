#!/usr/bin/python3
"""Writes the seed corpora of the fuzz harnesses (tests/fuzz/corpus/NAME/).

Seeds are small valid inputs of each kind, plus every input that once found a bug (named
regression-*), so that the regression runs in `meson test` keep checking them. Run from
anywhere: /usr/bin/python3 tests/fuzz/make_seeds.py
"""
import gzip
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "models")
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
from tokenizer_ref import bytes_to_unicode  # noqa: E402

SPLIT = b"\n--8<--\n"


def write(name, seed, data):
    directory = os.path.join(HERE, "corpus", name)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, seed), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors, header_size=None):
    """tensors: name -> (dtype, shape); zero data, laid out in order."""
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        n = 1
        for s in shape:
            n *= s
        size = n * (4 if dtype == "F32" else 2)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    size = len(text) if header_size is None else header_size
    return struct.pack("<Q", size) + text + bytes(offset)


def raw_header(text, n_data):
    return struct.pack("<Q", len(text)) + text.encode() + bytes(n_data)


# ---- a tiny model, in both layouts ----

W, MLP, VOCAB, CONTEXT, PATCH, IMAGE, EMBED = 4, 8, 516, 8, 2, 4, 4


def hf_tensors():
    t = {}
    grid = IMAGE // PATCH
    t["vision_model.embeddings.patch_embedding.weight"] = ("F16", [W, 3, PATCH, PATCH])
    t["vision_model.embeddings.class_embedding"] = ("F16", [W])
    t["vision_model.embeddings.position_embedding.weight"] = ("F16", [1 + grid * grid, W])
    for n in ("pre_layrnorm", "post_layernorm"):
        t["vision_model.%s.weight" % n] = ("F16", [W])
        t["vision_model.%s.bias" % n] = ("F16", [W])
    t["visual_projection.weight"] = ("F16", [EMBED, W])
    t["text_model.embeddings.token_embedding.weight"] = ("F16", [VOCAB, W])
    t["text_model.embeddings.position_embedding.weight"] = ("F16", [CONTEXT, W])
    t["text_model.final_layer_norm.weight"] = ("F16", [W])
    t["text_model.final_layer_norm.bias"] = ("F16", [W])
    t["text_projection.weight"] = ("F16", [EMBED, W])
    for tower in ("vision_model", "text_model"):
        p = "%s.encoder.layers.0." % tower
        for n in ("layer_norm1", "layer_norm2"):
            t[p + n + ".weight"] = ("F16", [W])
            t[p + n + ".bias"] = ("F16", [W])
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            t[p + "self_attn.%s.weight" % n] = ("F16", [W, W])
            t[p + "self_attn.%s.bias" % n] = ("F16", [W])
        t[p + "mlp.fc1.weight"] = ("F16", [MLP, W])
        t[p + "mlp.fc1.bias"] = ("F16", [MLP])
        t[p + "mlp.fc2.weight"] = ("F16", [W, MLP])
        t[p + "mlp.fc2.bias"] = ("F16", [W])
    t["logit_scale"] = ("F32", [])
    return t


def openclip_tensors():
    t = {}
    grid = IMAGE // PATCH
    t["visual.conv1.weight"] = ("BF16", [W, 3, PATCH, PATCH])
    t["visual.class_embedding"] = ("BF16", [W])
    t["visual.positional_embedding"] = ("BF16", [1 + grid * grid, W])
    for n in ("ln_pre", "ln_post"):
        t["visual.%s.weight" % n] = ("BF16", [W])
        t["visual.%s.bias" % n] = ("BF16", [W])
    t["visual.proj"] = ("BF16", [W, EMBED])
    t["token_embedding.weight"] = ("BF16", [VOCAB, W])
    t["positional_embedding"] = ("BF16", [CONTEXT, W])
    t["ln_final.weight"] = ("BF16", [W])
    t["ln_final.bias"] = ("BF16", [W])
    t["text_projection"] = ("BF16", [W, EMBED])
    for prefix in ("visual.transformer.resblocks.0.", "transformer.resblocks.0."):
        for n in ("ln_1", "ln_2"):
            t[prefix + n + ".weight"] = ("BF16", [W])
            t[prefix + n + ".bias"] = ("BF16", [W])
        t[prefix + "attn.in_proj_weight"] = ("BF16", [3 * W, W])
        t[prefix + "attn.in_proj_bias"] = ("BF16", [3 * W])
        t[prefix + "attn.out_proj.weight"] = ("BF16", [W, W])
        t[prefix + "attn.out_proj.bias"] = ("BF16", [W])
        t[prefix + "mlp.c_fc.weight"] = ("BF16", [MLP, W])
        t[prefix + "mlp.c_fc.bias"] = ("BF16", [MLP])
        t[prefix + "mlp.c_proj.weight"] = ("BF16", [W, MLP])
        t[prefix + "mlp.c_proj.bias"] = ("BF16", [W])
    t["logit_scale"] = ("F32", [])
    return t


def hf_config(**text):
    text_config = {"hidden_size": W, "intermediate_size": MLP, "num_attention_heads": 1,
                   "num_hidden_layers": 1, "max_position_embeddings": CONTEXT,
                   "vocab_size": VOCAB, "hidden_act": "quick_gelu"}
    text_config.update(text)
    return json.dumps({"projection_dim": EMBED, "text_config": text_config,
                       "vision_config": {"hidden_size": W, "intermediate_size": MLP,
                                         "num_attention_heads": 1, "num_hidden_layers": 1,
                                         "image_size": IMAGE, "patch_size": PATCH}})


def openclip_config(**vision):
    vision_cfg = {"image_size": IMAGE, "layers": 1, "width": W, "patch_size": PATCH,
                  "head_width": W, "mlp_ratio": MLP / W}
    vision_cfg.update(vision)
    return json.dumps({"model_cfg": {"embed_dim": EMBED, "quick_gelu": True,
                                     "vision_cfg": vision_cfg,
                                     "text_cfg": {"context_length": CONTEXT, "vocab_size": VOCAB,
                                                  "width": W, "heads": 1, "layers": 1,
                                                  "mlp_ratio": MLP / W}},
                       "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}})


def byte_symbols():
    chars = bytes_to_unicode()
    return [chars[b] for b in range(256)]


def vocab_and_merges():
    symbols = byte_symbols()
    vocab = symbols + [s + "</w>" for s in symbols] + ["ca", "cat</w>",
                                                       "<|startoftext|>", "<|endoftext|>"]
    vocab = vocab[:VOCAB - 2] + ["<|startoftext|>", "<|endoftext|>"]
    merges = "#version: 0.2\nc a\nca t</w>\n"
    return json.dumps({s: i for i, s in enumerate(vocab)}), merges


def small_bpe_gz():
    # the .gz form implies the vocabulary: 512 byte symbols, one per merge, 2 special tokens
    return gzip.compress(b"#version: 0.2\nc a\nca t</w>\n", mtime=0)


def main():
    hf_weights = safetensors(hf_tensors())
    openclip_weights = safetensors(openclip_tensors())
    vocab, merges = vocab_and_merges()

    # safetensors
    write("safetensors", "hf-tiny", hf_weights)
    write("safetensors", "openclip-tiny", openclip_weights)
    write("safetensors", "scalar", safetensors({"logit_scale": ("F32", [])}))
    write("safetensors", "metadata", raw_header('{"__metadata__": {"format": "pt"}, "a": '
                                                '{"dtype": "BF16", "shape": [2, 2], '
                                                '"data_offsets": [0, 8]}}', 8))
    write("safetensors", "regression-element-count-wraps",
          raw_header('{"w": {"dtype": "F32", "shape": [1073741824, 1073741824, 16], '
                     '"data_offsets": [0, 0]}}', 0))
    write("safetensors", "regression-shape-not-array",
          raw_header('{"w": {"dtype": "F32", "shape": 4, "data_offsets": [0, 16]}}', 16))
    write("safetensors", "regression-offsets-not-array",
          raw_header('{"w": {"dtype": "F32", "shape": [4], "data_offsets": {"a": 1}}}', 16))
    write("safetensors", "header-longer-than-file", struct.pack("<Q", 1 << 40) + b"{}")

    # .npy
    def npy(shape, descr="<f4", version=1, data=None):
        header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
            descr, "".join("%d, " % s for s in shape))
        header += " " * ((64 - (12 + len(header) + 1) % 64) % 64) + "\n"
        n = 1
        for s in shape:
            n *= s
        prefix = b"\x93NUMPY" + bytes([version, 0])
        prefix += struct.pack("<H" if version == 1 else "<I", len(header))
        return prefix + header.encode() + (bytes(4 * n) if data is None else data)

    write("npy", "f4-1x3x4x4", npy((1, 3, 4, 4)))
    write("npy", "i4-v2", npy((2, 3), "<i4", version=2))
    write("npy", "scalar", npy(()))
    write("npy", "regression-shape-wraps", npy((1073741824, 1073741824, 4), data=b""))

    # configurations: byte 0 picks the layout (0 HuggingFace, 1 OpenCLIP), for the test models
    with open(os.path.join(MODELS, "tiny-hf-f16", "config.json"), "rb") as f:
        hf = f.read()
    with open(os.path.join(MODELS, "tiny-openclip-bf16", "open_clip_config.json"), "rb") as f:
        oc = f.read()
    write("config", "hf", b"\0" + hf)
    write("config", "hf-with-preprocessor", b"\0" + hf + SPLIT
          + b'{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.2, 0.2, 0.2]}')
    write("config", "openclip", b"\1" + oc)
    oc_cfg = json.loads(oc)
    oc_cfg["model_cfg"]["vision_cfg"]["image_size"] = [4294967292, 4294967292]
    write("config", "regression-image-size-wraps", b"\1" + json.dumps(oc_cfg).encode())
    oc_cfg["model_cfg"]["vision_cfg"]["image_size"] = 48
    oc_cfg["model_cfg"]["vision_cfg"]["mlp_ratio"] = 1e300
    write("config", "regression-mlp-ratio-huge", b"\1" + json.dumps(oc_cfg).encode())
    oc_cfg["model_cfg"]["vision_cfg"]["mlp_ratio"] = 0.001
    write("config", "regression-mlp-ratio-tiny", b"\1" + json.dumps(oc_cfg).encode())
    hf_cfg = json.loads(hf)
    hf_cfg["text_config"]["num_hidden_layers"] = 16777215
    write("config", "regression-layers-before-check", b"\0" + json.dumps(hf_cfg).encode())

    # tokenizer files: byte 0 picks vocab.json + merges.txt, raw .gz, or text to gzip
    write("tokenizer_files", "hf", b"\0" + vocab.encode() + SPLIT + merges.encode())
    write("tokenizer_files", "gz", b"\1" + small_bpe_gz())
    write("tokenizer_files", "gz-text", b"\2" + b"#version: 0.2\nc a\nca t</w>\ni n\n")
    write("tokenizer_files", "regression-empty-vocab", b"\0" + SPLIT + merges.encode())
    write("tokenizer_files", "regression-gz-bomb",
          b"\1" + gzip.compress(b"#version: 0.2\n" + b"a" * (3 << 20), mtime=0))

    # tokenizing: byte 0 is the context length less 2
    for i, text in enumerate(["a photo of a cat", "İstanbul ǅemal &amp; &lt;tag&gt; &#x41;",
                              "don't stop 'til you've 42 ½ <|endoftext|>  <|startoftext|>",
                              "supercalifragilisticexpialidocious " * 4,
                              "\u201ccurly\u201d \u2018quotes\u2019 \u00a0nbsp\u3000ideographic",
                              "\U0001F600 emoji \u200b zero width"]):
        write("tokenize", "text-%d" % i, bytes([75]) + text.encode())
    write("tokenize", "invalid-utf8", b"\x4b\xff\xfe a \xc3")
    write("tokenize", "regression-long-word", b"\x4b" + b"pneumonoultramicroscopic" * 200)

    # labels: labels, labels-file, templates, stuff
    write("labels", "basic", b"cat, dog ,car" + SPLIT + b"person\nbicycle\n\n" + SPLIT
          + b"a photo of a {}.; a {} in the wild" + SPLIT + b"sky, road")
    write("labels", "imagenet", b"cat" + SPLIT + SPLIT + b" ImageNet " + SPLIT)
    write("labels", "empty", b" , ,," + SPLIT + b"\n\n" + SPLIT + b";;" + SPLIT + b",")
    write("labels", "no-placeholder", b"traffic light" + SPLIT + b"" + SPLIT
          + b"itap of a; {} {} twice" + SPLIT + b"Traffic Light")

    # model directories: byte 0 bit 0 OpenCLIP, bit 1 bpe .gz; config, weights, tokenizer
    write("model_dir", "hf", b"\0" + hf_config().encode() + SPLIT + hf_weights + SPLIT
          + vocab.encode() + SPLIT + merges.encode())
    write("model_dir", "openclip-gz", b"\3" + openclip_config().encode() + SPLIT
          + openclip_weights + SPLIT + small_bpe_gz())
    write("model_dir", "regression-image-size-wraps", b"\3"
          + openclip_config(image_size=[4294967292, 4294967292]).encode() + SPLIT
          + openclip_weights + SPLIT + small_bpe_gz())
    write("model_dir", "regression-layers-before-check", b"\0"
          + hf_config(num_hidden_layers=16777215).encode() + SPLIT + hf_weights + SPLIT
          + vocab.encode() + SPLIT + merges.encode())
    # upstream metadata: head (width, height, regions, then x, y, w, h per region as 16-bit)
    def head(width, height, boxes):
        values = [width - 1, height - 1, len(boxes)] + [v for box in boxes for v in box]
        return struct.pack("<%dH" % len(values), *values)

    write("meta", "detection", head(32, 24, [(2, 3, 10, 8)]) + SPLIT
          + b"detection, x_min=(double)0.1, y_min=(double)0.2, x_max=(double)0.5, "
            b"y_max=(double)0.6, confidence=(double)0.9, label_id=(int)3, label=(string)dog")
    write("meta", "tags", head(16, 16, [(0, 0, 16, 16), (4, 4, 2, 2)]) + SPLIT
          + b'umgclip, tags=(string)<"cat", "dog">, scores=(double)<0.7, 0.3>, '
            b'model=(string)tiny, label=(string)cat, source-pts=(guint64)0' + SPLIT
          + b"detection, label=(string)car, confidence=(float)0.5, label_id=(uint)2")
    write("meta", "alerts", head(8, 8, []) + SPLIT
          + b'alerts, stream=(string)cam1, alerts=(structure)< "alert\\,\\ query\\=\\(string\\)fire\\,\\ '
            b'score\\=\\(double\\)0.4\\,\\ since\\=\\(guint64\\)0;" >')
    write("meta", "wrong-types", head(8, 8, [(60000, 60000, 60000, 60000)]) + SPLIT
          + b"umgclip, tags=(int)4, scores=(string)x, label=(int)5" + SPLIT
          + b"detection, x_min=(string)a, label=(double)1.0, confidence=(string)high" + SPLIT
          + b"alerts, alerts=(int)3, stream=(int)4")
    # GStreamer's structure parser leaks an array that fails to parse (fuzz_meta.c)
    write("meta", "regression-tags-not-utf8", head(16, 16, [(0, 0, 16, 16)]) + SPLIT
          + b'umgclip, tags=(string)<"c\xa6\x8b", "dog">, scores=(double)<0.7, 0.3>')
    write("meta", "regression-unterminated-array", head(16, 16, [(0, 0, 16, 16)]) + SPLIT
          + b'umgclip, tags=(string)<"cat", "dog')
    return 0


if __name__ == "__main__":
    sys.exit(main())
