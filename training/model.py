#!/usr/bin/python3
# The trainable CLIP-shaped model: the same forward pass as tests/reference/clip_ref.py (and
# so the C runtime), batched and differentiable, with the runtime's dense modes and RoI-Align.
"""CLIP in PyTorch for training, exported in the HuggingFace layout the runtime loads.

  model = model.ClipModel(model.TINY)
  image, dense = model.encode_image(pixels, dense_mode="naclip")  # [B, E], [B, gh, gw, E]
  text = model.encode_text(ids, end_id)                            # [B, E]
  model.export(DIR, vocabulary)                                    # config.json, model.safetensors, ...
  model = model.ClipModel.load(DIR)                                # back from an export

Every formula follows clip_ref: pre-LN blocks, head_dim^-1/2 scaling, quick_gelu, CLS
through ln_post and the projection, the text pooled at the first end token. The dense
path is the runtime's "reduced" last block: out_proj(A · V) from X = ln_1(x), no residual
and no MLP, A by dense mode, then ln_post and the projection on every patch token.

Parameter-efficient tuning: add_dense_adapters() puts low-rank deltas (LoRA) on the
attention projections of the last vision block, which is the dense head; export() folds
them into the weights, so the runtime needs no extra tensors.
"""

import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
import safetensors_io  # noqa: E402

DENSE_MODES = ["naclip", "clearclip", "sclip", "maskclip"]
NACLIP_SIGMA = 5.0
ROI_OUTPUT_SIZE = 7
ROI_SAMPLING_RATIO = 2
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# The default size: trains on 2 CPU cores within the hour, runs in the runtime in
# milliseconds.
TINY = dict(image_size=64, patch_size=8, vision_width=128, vision_layers=4, vision_heads=4,
            vision_mlp=512, text_width=128, text_layers=3, text_heads=4, text_mlp=512,
            context_length=24, embed_dim=128, act="quick_gelu", vocab_size=None)


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


ACTIVATIONS = {"quick_gelu": quick_gelu, "gelu": F.gelu}


class LowRankDelta(nn.Module):
    """delta W = scale · B A, with B zero at start so tuning begins from the trained model."""

    def __init__(self, out_features, in_features, rank, alpha):
        super().__init__()
        self.down = nn.Parameter(torch.randn(rank, in_features) / math.sqrt(in_features))
        self.up = nn.Parameter(torch.zeros(out_features, rank))
        self.scale = alpha / rank

    def weight(self):
        return self.scale * self.up @ self.down


class Block(nn.Module):
    """Pre-LN transformer block; linear weights [out, in] like HuggingFace's."""

    PROJECTIONS = ["q", "k", "v", "out"]

    def __init__(self, width, heads, mlp, act):
        super().__init__()
        self.heads = heads
        self.act = ACTIVATIONS[act]
        self.ln_1 = nn.LayerNorm(width, eps=1e-5)
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(width, width)
        self.v = nn.Linear(width, width)
        self.out = nn.Linear(width, width)
        self.ln_2 = nn.LayerNorm(width, eps=1e-5)
        self.fc1 = nn.Linear(width, mlp)
        self.fc2 = nn.Linear(mlp, width)
        self.adapters = nn.ModuleDict()

    def add_adapters(self, rank, alpha):
        for name in self.PROJECTIONS:
            linear = getattr(self, name)
            self.adapters[name] = LowRankDelta(linear.out_features, linear.in_features, rank, alpha)

    def merged_weight(self, name):
        weight = getattr(self, name).weight
        if name in self.adapters:
            weight = weight + self.adapters[name].weight()
        return weight

    def _project(self, name, x):
        return F.linear(x, self.merged_weight(name), getattr(self, name).bias)

    def _split_heads(self, x):
        # [B, N, width] -> [B, heads, N, head_dim]
        return x.reshape(x.shape[0], x.shape[1], self.heads, -1).transpose(1, 2)

    @staticmethod
    def _merge_heads(x):
        # [B, heads, N, head_dim] -> [B, N, width]
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)

    def _qkv(self, x):
        normed = self.ln_1(x)
        return (self._split_heads(self._project("q", normed)),
                self._split_heads(self._project("k", normed)),
                self._split_heads(self._project("v", normed)))

    def forward(self, x, mask=None):
        q, k, v = self._qkv(x)
        scale = q.shape[-1] ** -0.5
        scores = scale * q @ k.transpose(-1, -2)
        if mask is not None:
            scores = scores + mask
        x = x + self._project("out", self._merge_heads(torch.softmax(scores, -1) @ v))
        return x + self.fc2(self.act(self.fc1(self.ln_2(x))))

    def dense(self, x, mode, omega):
        """The reduced block of the dense path: out_proj(A V), no residual, no MLP."""
        q, k, v = self._qkv(x)
        scale = q.shape[-1] ** -0.5
        if mode == "naclip":
            attention = torch.softmax(scale * k @ k.transpose(-1, -2) + omega, -1)
        elif mode == "clearclip":
            attention = torch.softmax(scale * q @ q.transpose(-1, -2), -1)
        elif mode == "sclip":
            attention = (torch.softmax(scale * q @ q.transpose(-1, -2), -1)
                         + torch.softmax(scale * k @ k.transpose(-1, -2), -1))
        elif mode == "maskclip":
            return self._project("out", self._merge_heads(v))
        else:
            raise ValueError("unknown dense mode %r (expected one of %s)"
                             % (mode, ", ".join(DENSE_MODES)))
        return self._project("out", self._merge_heads(attention @ v))


def naclip_neighbourhood(grid_h, grid_w):
    """Ω [1 + n, 1 + n]: Gaussian of squared patch-grid distance, 0 in the CLS row/column."""
    rows = torch.arange(grid_h * grid_w) // grid_w
    cols = torch.arange(grid_h * grid_w) % grid_w
    dist2 = (rows[:, None] - rows[None, :]) ** 2 + (cols[:, None] - cols[None, :]) ** 2
    omega = torch.zeros(1 + grid_h * grid_w, 1 + grid_h * grid_w)
    omega[1:, 1:] = torch.exp(-dist2.float() / (2 * NACLIP_SIGMA ** 2))
    return omega


class VisionTower(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        width, patch = cfg["vision_width"], cfg["patch_size"]
        self.patch_size, self.image_size = patch, cfg["image_size"]
        self.grid = cfg["image_size"] // patch
        self.patch = nn.Conv2d(3, width, patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(width) * width ** -0.5)
        self.position = nn.Parameter(torch.randn(1 + self.grid ** 2, width) * 0.02)
        self.ln_pre = nn.LayerNorm(width, eps=1e-5)
        self.blocks = nn.ModuleList(
            Block(width, cfg["vision_heads"], cfg["vision_mlp"], cfg["act"])
            for _ in range(cfg["vision_layers"]))
        self.ln_post = nn.LayerNorm(width, eps=1e-5)
        self.proj = nn.Linear(width, cfg["embed_dim"], bias=False)
        self._omega = {}

    def position_embedding(self, grid_h, grid_w):
        """The patch part resized bicubically (HF interpolate_pos_encoding) off the native grid."""
        if (grid_h, grid_w) == (self.grid, self.grid):
            return self.position
        patches = self.position[1:].reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
        patches = patches.permute(0, 2, 3, 1).reshape(grid_h * grid_w, -1)
        return torch.cat([self.position[:1], patches], 0)

    def omega(self, grid_h, grid_w):
        if (grid_h, grid_w) not in self._omega:
            self._omega[(grid_h, grid_w)] = naclip_neighbourhood(grid_h, grid_w)
        return self._omega[(grid_h, grid_w)]

    def forward(self, pixels, dense_mode=None):
        """pixels [B, 3, H, W] -> image embedding [B, E] and, with a dense mode, the dense map
        [B, H/p, W/p, E] (both projected, not normalised)."""
        batch, _, height, width = pixels.shape
        if height % self.patch_size or width % self.patch_size:
            raise ValueError("image %dx%d is not a multiple of the patch size %d"
                             % (width, height, self.patch_size))
        grid_h, grid_w = height // self.patch_size, width // self.patch_size
        patches = self.patch(pixels).flatten(2).transpose(1, 2)  # [B, gh * gw, width]
        cls = self.class_embedding.expand(batch, 1, -1)
        x = torch.cat([cls, patches], 1) + self.position_embedding(grid_h, grid_w)
        x = self.ln_pre(x)
        for block in self.blocks[:-1]:
            x = block(x)
        last = self.blocks[-1]
        image = self.proj(self.ln_post(last(x)[:, 0]))
        if dense_mode is None:
            return image, None
        y = last.dense(x, dense_mode, self.omega(grid_h, grid_w))
        dense = self.proj(self.ln_post(y[:, 1:]))
        return image, dense.reshape(batch, grid_h, grid_w, -1)


class TextTower(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        width = cfg["text_width"]
        self.context_length = cfg["context_length"]
        self.token = nn.Embedding(cfg["vocab_size"], width)
        nn.init.normal_(self.token.weight, std=0.02)
        self.position = nn.Parameter(torch.randn(cfg["context_length"], width) * 0.01)
        self.blocks = nn.ModuleList(
            Block(width, cfg["text_heads"], cfg["text_mlp"], cfg["act"])
            for _ in range(cfg["text_layers"]))
        self.ln_final = nn.LayerNorm(width, eps=1e-5)
        self.proj = nn.Linear(width, cfg["embed_dim"], bias=False)

    def forward(self, ids, end_id):
        """ids [B, context] (start, text, end, padding) -> [B, E], pooled at the first end id.
        Tokens after the longest end are dropped: the causal mask makes them irrelevant."""
        is_end = ids == end_id
        if not bool(is_end.any(1).all()):
            raise ValueError("a token sequence holds no end token %d" % end_id)
        ends = is_end.int().argmax(1)
        length = int(ends.max()) + 1
        ids = ids[:, :length]
        x = self.token(ids) + self.position[:length]
        causal = torch.full((length, length), float("-inf")).triu(1)
        for block in self.blocks:
            x = block(x, causal)
        pooled = x[torch.arange(ids.shape[0]), ends]
        return self.proj(self.ln_final(pooled))


class ClipModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        if cfg["vocab_size"] is None:
            raise ValueError("the config needs the vocabulary size")
        if cfg["image_size"] % cfg["patch_size"]:
            raise ValueError("image size %d is not a multiple of patch %d"
                             % (cfg["image_size"], cfg["patch_size"]))
        self.cfg = dict(cfg)
        self.vision = VisionTower(cfg)
        self.text = TextTower(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, pixels, dense_mode=None):
        return self.vision(pixels, dense_mode)

    def encode_text(self, ids, end_id):
        return self.text(ids, end_id)

    def scale(self):
        # CLIP's clamp keeps the temperature from collapsing
        return self.logit_scale.clamp(max=math.log(100.0)).exp()

    def add_dense_adapters(self, rank=8, alpha=8.0):
        self.vision.blocks[-1].add_adapters(rank, alpha)
        return list(self.vision.blocks[-1].adapters.parameters())

    # ---- HuggingFace layout ---------------------------------------------------------

    def hf_config(self):
        c = self.cfg
        return {
            "architectures": ["CLIPModel"],
            "model_type": "clip",
            "projection_dim": c["embed_dim"],
            "logit_scale_init_value": 2.6592,
            "torch_dtype": "float32",
            "text_config": {
                "hidden_size": c["text_width"], "intermediate_size": c["text_mlp"],
                "num_attention_heads": c["text_heads"], "num_hidden_layers": c["text_layers"],
                "max_position_embeddings": c["context_length"], "vocab_size": c["vocab_size"],
                "hidden_act": c["act"], "layer_norm_eps": 1e-5, "projection_dim": c["embed_dim"],
                "bos_token_id": c["vocab_size"] - 2, "eos_token_id": c["vocab_size"] - 1,
                "pad_token_id": 0,
            },
            "vision_config": {
                "hidden_size": c["vision_width"], "intermediate_size": c["vision_mlp"],
                "num_attention_heads": c["vision_heads"], "num_hidden_layers": c["vision_layers"],
                "image_size": c["image_size"], "patch_size": c["patch_size"], "num_channels": 3,
                "hidden_act": c["act"], "layer_norm_eps": 1e-5, "projection_dim": c["embed_dim"],
            },
        }

    _BLOCK_NAMES = {"ln_1": "layer_norm1", "q": "self_attn.q_proj", "k": "self_attn.k_proj",
                    "v": "self_attn.v_proj", "out": "self_attn.out_proj", "ln_2": "layer_norm2",
                    "fc1": "mlp.fc1", "fc2": "mlp.fc2"}

    def hf_tensors(self):
        """{HF name: tensor}, with any low-rank adapters folded into their weights."""
        return {name: tensor.detach().float().contiguous()
                for name, tensor in self._hf_parameters(merged=True).items()}

    @torch.no_grad()
    def export(self, out_dir, vocabulary, dtype="f32", metadata=None):
        """A HuggingFace-layout model directory the runtime loads unchanged."""
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "config.json"), "w") as f:
            json.dump(self.hf_config(), f, indent=2)
            f.write("\n")
        with open(os.path.join(out_dir, "preprocessor_config.json"), "w") as f:
            json.dump({"image_mean": list(CLIP_MEAN), "image_std": list(CLIP_STD),
                       "crop_size": self.cfg["image_size"], "size": self.cfg["image_size"]}, f,
                      indent=2)
            f.write("\n")
        safetensors_io.save(os.path.join(out_dir, "model.safetensors"), self.hf_tensors(), dtype,
                            metadata)
        vocabulary.write(out_dir)

    @classmethod
    def load(cls, model_dir):
        """A model from an export (HF names, adapters already folded)."""
        with open(os.path.join(model_dir, "config.json")) as f:
            config = json.load(f)
        vc, tc = config["vision_config"], config["text_config"]
        cfg = dict(image_size=vc["image_size"], patch_size=vc["patch_size"],
                   vision_width=vc["hidden_size"], vision_layers=vc["num_hidden_layers"],
                   vision_heads=vc["num_attention_heads"], vision_mlp=vc["intermediate_size"],
                   text_width=tc["hidden_size"], text_layers=tc["num_hidden_layers"],
                   text_heads=tc["num_attention_heads"], text_mlp=tc["intermediate_size"],
                   context_length=tc["max_position_embeddings"], embed_dim=config["projection_dim"],
                   act=vc["hidden_act"], vocab_size=tc["vocab_size"])
        model = cls(cfg)
        tensors = safetensors_io.load(os.path.join(model_dir, "model.safetensors"))
        with torch.no_grad():
            for name, tensor in model.hf_tensors().items():
                if name not in tensors or tensors[name].shape != tensor.shape:
                    raise ValueError("%s: tensor %s is missing or has the wrong shape"
                                     % (model_dir, name))
            for name, parameter in model._hf_parameters().items():
                parameter.copy_(tensors[name])
        return model

    def _hf_parameters(self, merged=False):
        """{HF name: the parameter it loads into}; merged: block projections as their weight
        with any low-rank adapter folded in, as they are exported."""
        names = {}
        v, t = self.vision, self.text

        def block(prefix, b):
            for ours, theirs in self._BLOCK_NAMES.items():
                module = getattr(b, ours)
                folded = merged and ours in Block.PROJECTIONS
                names[prefix + theirs + ".weight"] = (b.merged_weight(ours) if folded
                                                      else module.weight)
                names[prefix + theirs + ".bias"] = module.bias

        names["vision_model.embeddings.patch_embedding.weight"] = v.patch.weight
        names["vision_model.embeddings.class_embedding"] = v.class_embedding
        names["vision_model.embeddings.position_embedding.weight"] = v.position
        names["vision_model.pre_layrnorm.weight"] = v.ln_pre.weight
        names["vision_model.pre_layrnorm.bias"] = v.ln_pre.bias
        for i, b in enumerate(v.blocks):
            block("vision_model.encoder.layers.%d." % i, b)
        names["vision_model.post_layernorm.weight"] = v.ln_post.weight
        names["vision_model.post_layernorm.bias"] = v.ln_post.bias
        names["visual_projection.weight"] = v.proj.weight
        names["text_model.embeddings.token_embedding.weight"] = t.token.weight
        names["text_model.embeddings.position_embedding.weight"] = t.position
        for i, b in enumerate(t.blocks):
            block("text_model.encoder.layers.%d." % i, b)
        names["text_model.final_layer_norm.weight"] = t.ln_final.weight
        names["text_model.final_layer_norm.bias"] = t.ln_final.bias
        names["text_projection.weight"] = t.proj.weight
        names["logit_scale"] = self.logit_scale
        return names


# ---- region and mask pooling ------------------------------------------------------------

def _axis_weights(coords, size):
    """[n_samples, size] bilinear weights along one axis with torchvision's roi_align rules:
    a sample beyond (-1, size) counts as zero, negative positions clamp to 0, positions at
    or past the last cell take the last cell."""
    inside = (coords >= -1.0) & (coords <= size)
    c = coords.clamp(min=0.0)
    low = c.floor()
    at_end = low >= size - 1
    frac = torch.where(at_end, torch.zeros_like(c), c - low)
    low = torch.where(at_end, torch.full_like(low, size - 1), low).long()
    high = (low + 1).clamp(max=size - 1)
    weights = torch.zeros(coords.shape[0], size)
    rows = torch.arange(coords.shape[0])
    weights[rows, low] += (1.0 - frac) * inside
    weights[rows, high] += frac * inside * (~at_end)
    return weights


def roi_align_weights(boxes_xywh, grid_h, grid_w, patch_size):
    """[n, gh * gw]: region embedding = weights @ dense (flattened). Aligned RoI-Align with
    7x7 bins of 2x2 samples, then the mean of the bins; since every bin has the same number
    of samples that is the mean of all samples, and bilinear sampling is separable, so the
    weights are the outer product of the per-axis sample means."""
    out = []
    scale = torch.tensor(1.0 / patch_size, dtype=torch.float32)
    bins = torch.arange(ROI_OUTPUT_SIZE, dtype=torch.float32)
    sub = torch.arange(ROI_SAMPLING_RATIO, dtype=torch.float32) + 0.5
    for box in boxes_xywh:
        x, y, w, h = [torch.tensor(float(c), dtype=torch.float32) for c in box]
        x1, y1 = x * scale - 0.5, y * scale - 0.5
        bin_w = ((x + w) * scale - 0.5 - x1) / ROI_OUTPUT_SIZE
        bin_h = ((y + h) * scale - 0.5 - y1) / ROI_OUTPUT_SIZE
        ys = (y1 + bins[:, None] * bin_h + sub[None, :] * bin_h / ROI_SAMPLING_RATIO).reshape(-1)
        xs = (x1 + bins[:, None] * bin_w + sub[None, :] * bin_w / ROI_SAMPLING_RATIO).reshape(-1)
        wy = _axis_weights(ys, grid_h).mean(0)
        wx = _axis_weights(xs, grid_w).mean(0)
        out.append((wy[:, None] * wx[None, :]).reshape(-1))
    return torch.stack(out, 0) if out else torch.zeros(0, grid_h * grid_w)


def mask_pool_weights(masks, patch_size):
    """masks [n, H, W] bool -> [n, gh * gw]: each cell weighted by the fraction of it the mask
    covers, normalised to sum 1 (the mask average of the dense map)."""
    n, height, width = masks.shape
    cover = masks.float().reshape(n, height // patch_size, patch_size, width // patch_size,
                                  patch_size).mean((2, 4)).reshape(n, -1)
    return cover / cover.sum(1, keepdim=True).clamp(min=1e-6)


def pixels_from_uint8(images):
    """uint8 [B, H, W, 3] (numpy or torch) -> normalised float32 [B, 3, H, W] as the runtime's
    preprocessing gives at the model's own size."""
    x = torch.as_tensor(images).float().permute(0, 3, 1, 2) / 255.0
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std
