#!/usr/bin/python3
# Writes a complete, seeded, random CLIP model directory in the HuggingFace or OpenCLIP
# layout, so the runtime can be tested at any size without downloading a checkpoint.
"""Generate a random CLIP model directory.

  make_model.py --preset tiny-hf-f16 --out DIR
  make_model.py --layout huggingface --dtype f16 --seed 3 --out DIR --image-size 64 ...
"""

import argparse
import gzip
import json
import math
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

DEFAULT_BPE = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data", "clip-bpe",
    "bpe_simple_vocab_16e6.txt.gz"))
if not os.path.exists(DEFAULT_BPE):
    DEFAULT_BPE = "/work/shared/data/clip-bpe/bpe_simple_vocab_16e6.txt.gz"

# CLIP's normalisation constants, written into OpenCLIP's preprocess_cfg.
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

PRESETS = {
    "tiny-hf-f16": dict(
        layout="huggingface", dtype="f16", image_size=32, patch_size=8, vision_width=64,
        vision_layers=2, vision_heads=4, vision_mlp=256, act="quick_gelu", text_width=32,
        text_layers=2, text_heads=2, text_mlp=128, vocab_size=49408, context_length=77,
        embed_dim=32),
    "tiny-openclip-bf16": dict(
        layout="openclip", dtype="bf16", image_size=48, patch_size=16, vision_width=48,
        vision_layers=2, vision_heads=3, vision_mlp=192, act="gelu", text_width=32,
        text_layers=2, text_heads=2, text_mlp=128, vocab_size=49408, context_length=77,
        embed_dim=24),
    "b16-hf-f16": dict(
        layout="huggingface", dtype="f16", image_size=224, patch_size=16, vision_width=768,
        vision_layers=2, vision_heads=12, vision_mlp=3072, act="quick_gelu", text_width=512,
        text_layers=2, text_heads=8, text_mlp=2048, vocab_size=49408, context_length=77,
        embed_dim=512),
    "b32-openclip-f32": dict(
        layout="openclip", dtype="f32", image_size=256, patch_size=32, vision_width=768,
        vision_layers=2, vision_heads=12, vision_mlp=3072, act="gelu", text_width=512,
        text_layers=2, text_heads=8, text_mlp=2048, vocab_size=49408, context_length=77,
        embed_dim=512),
}

SIZE_OPTIONS = ["image_size", "patch_size", "vision_width", "vision_layers", "vision_heads",
                "vision_mlp", "text_width", "text_layers", "text_heads", "text_mlp",
                "vocab_size", "context_length", "embed_dim"]


class Init:
    """Seeded draws in a fixed order, so one seed always gives the same model."""

    def __init__(self, seed):
        self.generator = torch.Generator().manual_seed(seed)

    def normal(self, shape, std, mean=0.0):
        return torch.randn(shape, generator=self.generator) * std + mean

    def linear(self, out_features, in_features, gain=1.0):
        return self.normal((out_features, in_features), gain / math.sqrt(in_features))

    def bias(self, n):
        return self.normal((n,), 0.02)

    def layernorm(self, n):
        return self.normal((n,), 0.1, 1.0), self.normal((n,), 0.05)


def make_block(init, width, mlp):
    """One pre-LN transformer block, layout-neutral: linear weights are [out, in]."""
    block = {}
    block["ln_1"] = init.layernorm(width)
    # Larger q and k so that the random attention is far from uniform.
    block["q"] = (init.linear(width, width, 1.5), init.bias(width))
    block["k"] = (init.linear(width, width, 1.5), init.bias(width))
    block["v"] = (init.linear(width, width), init.bias(width))
    block["out"] = (init.linear(width, width), init.bias(width))
    block["ln_2"] = init.layernorm(width)
    block["fc1"] = (init.linear(mlp, width), init.bias(mlp))
    block["fc2"] = (init.linear(width, mlp), init.bias(width))
    return block


def make_weights(cfg, seed):
    init = Init(seed)
    width, patch, grid = cfg["vision_width"], cfg["patch_size"], cfg["image_size"] // cfg["patch_size"]
    vision = {
        "patch": init.normal((width, 3, patch, patch), 1.0 / math.sqrt(3 * patch * patch)),
        "class": init.normal((width,), 0.5),
        "position": init.normal((1 + grid * grid, width), 0.5),
        "ln_pre": init.layernorm(width),
        "blocks": [make_block(init, width, cfg["vision_mlp"]) for _ in range(cfg["vision_layers"])],
        "ln_post": init.layernorm(width),
        "proj": init.linear(cfg["embed_dim"], width),
    }
    text_width = cfg["text_width"]
    text = {
        "token": init.normal((cfg["vocab_size"], text_width), 0.5),
        "position": init.normal((cfg["context_length"], text_width), 0.5),
        "blocks": [make_block(init, text_width, cfg["text_mlp"]) for _ in range(cfg["text_layers"])],
        "ln_final": init.layernorm(text_width),
        "proj": init.linear(cfg["embed_dim"], text_width),
    }
    logit_scale = torch.tensor(math.log(1.0 / 0.07), dtype=torch.float32)
    return vision, text, logit_scale


def hf_tensors(vision, text, logit_scale):
    out = {}

    def block(prefix, b):
        names = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
                 "out": "self_attn.out_proj", "ln_1": "layer_norm1", "fc1": "mlp.fc1",
                 "fc2": "mlp.fc2", "ln_2": "layer_norm2"}
        for key in ["ln_1", "q", "k", "v", "out", "ln_2", "fc1", "fc2"]:
            out[prefix + names[key] + ".weight"] = b[key][0]
            out[prefix + names[key] + ".bias"] = b[key][1]

    out["vision_model.embeddings.patch_embedding.weight"] = vision["patch"]
    out["vision_model.embeddings.class_embedding"] = vision["class"]
    out["vision_model.embeddings.position_embedding.weight"] = vision["position"]
    out["vision_model.pre_layrnorm.weight"], out["vision_model.pre_layrnorm.bias"] = vision["ln_pre"]
    for i, b in enumerate(vision["blocks"]):
        block("vision_model.encoder.layers.%d." % i, b)
    out["vision_model.post_layernorm.weight"], out["vision_model.post_layernorm.bias"] = vision["ln_post"]
    out["visual_projection.weight"] = vision["proj"]
    out["text_model.embeddings.token_embedding.weight"] = text["token"]
    out["text_model.embeddings.position_embedding.weight"] = text["position"]
    for i, b in enumerate(text["blocks"]):
        block("text_model.encoder.layers.%d." % i, b)
    out["text_model.final_layer_norm.weight"], out["text_model.final_layer_norm.bias"] = text["ln_final"]
    out["text_projection.weight"] = text["proj"]
    out["logit_scale"] = logit_scale
    return out


def openclip_tensors(vision, text, logit_scale):
    out = {}

    def block(prefix, b):
        out[prefix + "ln_1.weight"], out[prefix + "ln_1.bias"] = b["ln_1"]
        out[prefix + "attn.in_proj_weight"] = torch.cat([b["q"][0], b["k"][0], b["v"][0]], 0)
        out[prefix + "attn.in_proj_bias"] = torch.cat([b["q"][1], b["k"][1], b["v"][1]], 0)
        out[prefix + "attn.out_proj.weight"], out[prefix + "attn.out_proj.bias"] = b["out"]
        out[prefix + "ln_2.weight"], out[prefix + "ln_2.bias"] = b["ln_2"]
        out[prefix + "mlp.c_fc.weight"], out[prefix + "mlp.c_fc.bias"] = b["fc1"]
        out[prefix + "mlp.c_proj.weight"], out[prefix + "mlp.c_proj.bias"] = b["fc2"]

    out["visual.conv1.weight"] = vision["patch"]
    out["visual.class_embedding"] = vision["class"]
    out["visual.positional_embedding"] = vision["position"]
    out["visual.ln_pre.weight"], out["visual.ln_pre.bias"] = vision["ln_pre"]
    for i, b in enumerate(vision["blocks"]):
        block("visual.transformer.resblocks.%d." % i, b)
    out["visual.ln_post.weight"], out["visual.ln_post.bias"] = vision["ln_post"]
    # OpenCLIP multiplies x @ proj, so its projections are stored [in, out].
    out["visual.proj"] = vision["proj"].t().contiguous()
    out["token_embedding.weight"] = text["token"]
    out["positional_embedding"] = text["position"]
    for i, b in enumerate(text["blocks"]):
        block("transformer.resblocks.%d." % i, b)
    out["ln_final.weight"], out["ln_final.bias"] = text["ln_final"]
    out["text_projection"] = text["proj"].t().contiguous()
    out["logit_scale"] = logit_scale
    return out


def bytes_to_unicode():
    """CLIP / GPT-2's reversible map from bytes to printable unicode characters."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, [chr(c) for c in codes]))


def write_hf_tokenizer(bpe_path, out_dir):
    with gzip.open(bpe_path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({token: i for i, token in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for m in merges:
            f.write(m + "\n")


def hf_config(cfg):
    return {
        "architectures": ["CLIPModel"],
        "model_type": "clip",
        "projection_dim": cfg["embed_dim"],
        "logit_scale_init_value": 2.6592,
        "torch_dtype": {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[cfg["dtype"]],
        "text_config": {
            "hidden_size": cfg["text_width"],
            "intermediate_size": cfg["text_mlp"],
            "num_attention_heads": cfg["text_heads"],
            "num_hidden_layers": cfg["text_layers"],
            "max_position_embeddings": cfg["context_length"],
            "vocab_size": cfg["vocab_size"],
            "hidden_act": cfg["act"],
            "layer_norm_eps": 1e-5,
            "projection_dim": cfg["embed_dim"],
            "bos_token_id": 49406,
            "eos_token_id": 49407,
            "pad_token_id": 1,
        },
        "vision_config": {
            "hidden_size": cfg["vision_width"],
            "intermediate_size": cfg["vision_mlp"],
            "num_attention_heads": cfg["vision_heads"],
            "num_hidden_layers": cfg["vision_layers"],
            "image_size": cfg["image_size"],
            "patch_size": cfg["patch_size"],
            "num_channels": 3,
            "hidden_act": cfg["act"],
            "layer_norm_eps": 1e-5,
            "projection_dim": cfg["embed_dim"],
        },
    }


def openclip_config(cfg):
    if cfg["vision_width"] % cfg["vision_heads"]:
        raise ValueError("vision width %d is not a multiple of %d heads"
                         % (cfg["vision_width"], cfg["vision_heads"]))
    if cfg["text_mlp"] != 4 * cfg["text_width"]:
        raise ValueError("OpenCLIP's text tower has mlp = 4 x width; got %d for width %d"
                         % (cfg["text_mlp"], cfg["text_width"]))
    mlp_ratio = cfg["vision_mlp"] / cfg["vision_width"]
    return {
        "model_cfg": {
            "embed_dim": cfg["embed_dim"],
            "quick_gelu": cfg["act"] == "quick_gelu",
            "vision_cfg": {
                "image_size": cfg["image_size"],
                "layers": cfg["vision_layers"],
                "width": cfg["vision_width"],
                "patch_size": cfg["patch_size"],
                "head_width": cfg["vision_width"] // cfg["vision_heads"],
                "mlp_ratio": int(mlp_ratio) if mlp_ratio == int(mlp_ratio) else mlp_ratio,
            },
            "text_cfg": {
                "context_length": cfg["context_length"],
                "vocab_size": cfg["vocab_size"],
                "width": cfg["text_width"],
                "heads": cfg["text_heads"],
                "layers": cfg["text_layers"],
            },
        },
        "preprocess_cfg": {"mean": CLIP_MEAN, "std": CLIP_STD},
    }


def make_model(cfg, seed, out_dir, bpe_path=DEFAULT_BPE):
    """Write the model directory described by cfg (a PRESETS-like dict plus layout/dtype)."""
    if cfg["image_size"] % cfg["patch_size"]:
        raise ValueError("image size %d is not a multiple of patch %d"
                         % (cfg["image_size"], cfg["patch_size"]))
    for tower in ["vision", "text"]:
        if cfg[tower + "_width"] % cfg[tower + "_heads"]:
            raise ValueError("%s width %d is not a multiple of %d heads"
                             % (tower, cfg[tower + "_width"], cfg[tower + "_heads"]))
    os.makedirs(out_dir, exist_ok=True)
    vision, text, logit_scale = make_weights(cfg, seed)
    if cfg["layout"] == "huggingface":
        with open(os.path.join(out_dir, "config.json"), "w") as f:
            json.dump(hf_config(cfg), f, indent=2)
            f.write("\n")
        safetensors_io.save(os.path.join(out_dir, "model.safetensors"),
                            hf_tensors(vision, text, logit_scale), cfg["dtype"])
        write_hf_tokenizer(bpe_path, out_dir)
    elif cfg["layout"] == "openclip":
        with open(os.path.join(out_dir, "open_clip_config.json"), "w") as f:
            json.dump(openclip_config(cfg), f, indent=2)
            f.write("\n")
        safetensors_io.save(os.path.join(out_dir, "open_clip_model.safetensors"),
                            openclip_tensors(vision, text, logit_scale), cfg["dtype"])
        shutil.copyfile(bpe_path, os.path.join(out_dir, "bpe_simple_vocab_16e6.txt.gz"))
    else:
        raise ValueError("unknown layout %r" % cfg["layout"])


def config_from_args(args):
    cfg = dict(PRESETS[args.preset]) if args.preset else dict(PRESETS["tiny-hf-f16"])
    if args.layout:
        cfg["layout"] = args.layout
    if args.dtype:
        cfg["dtype"] = args.dtype
    if args.act:
        cfg["act"] = args.act
    for key in SIZE_OPTIONS:
        value = getattr(args, key)
        if value is not None:
            cfg[key] = value
    if args.head_width is not None:
        cfg["vision_heads"] = cfg["vision_width"] // args.head_width
    if args.mlp_ratio is not None:
        cfg["vision_mlp"] = int(round(cfg["vision_width"] * args.mlp_ratio))
    return cfg


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="start from a preset; other options override it "
                             "(without a preset, tiny-hf-f16's sizes are the base)")
    parser.add_argument("--layout", choices=["huggingface", "openclip"])
    parser.add_argument("--dtype", choices=["f32", "f16", "bf16"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="model directory to write")
    parser.add_argument("--bpe", default=DEFAULT_BPE, help="bpe_simple_vocab_16e6.txt.gz")
    parser.add_argument("--act", choices=["quick_gelu", "gelu"])
    for key in SIZE_OPTIONS:
        parser.add_argument("--" + key.replace("_", "-"), type=int)
    parser.add_argument("--head-width", type=int, help="vision head width (OpenCLIP style)")
    parser.add_argument("--mlp-ratio", type=float, help="vision mlp / width (OpenCLIP style)")
    args = parser.parse_args()
    try:
        make_model(config_from_args(args), args.seed, args.out, args.bpe)
    except (ValueError, OSError) as e:
        print("make_model.py: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
