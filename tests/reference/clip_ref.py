# Independent PyTorch reference of CLIP inference (image, text, training-free dense maps,
# RoI-Align regions), written from the equations; the oracle for the C runtime's outputs.
"""CLIP reference in float32 with torch.nn.functional only.

  model = clip_ref.load("tests/models/tiny-hf-f16")
  model.encode_image(pixels)                 # pixels [1, 3, H, W] -> [E]
  model.encode_text(token_ids)               # 77 ids -> [E]
  model.encode_dense(pixels, "naclip")       # -> [H/p, W/p, E]
  model.encode_regions(pixels, boxes, mode)  # boxes [[x, y, w, h], ...] -> [n, E], L2-normalised

Weights are read back from the model directory as stored (F32, F16 or BF16) and upcast to
float32, so the reference sees exactly what the runtime sees.
"""

import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

START_TOKEN = 49406
END_TOKEN = 49407
DENSE_MODES = ["naclip", "clearclip", "sclip", "maskclip"]
NACLIP_SIGMA = 5.0
ROI_OUTPUT_SIZE = 7
ROI_SAMPLING_RATIO = 2


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


def exact_gelu(x):
    return F.gelu(x)


ACTIVATIONS = {"quick_gelu": quick_gelu, "gelu": exact_gelu}


class Tower:
    """Weights of one transformer tower in one layout-neutral form: linear weights are
    [out, in] (y = x Wᵀ + b), blocks are dicts with ln_1, q, k, v, out, ln_2, fc1, fc2."""

    def __init__(self, width, heads, act, eps):
        if width % heads:
            raise ValueError("width %d is not a multiple of %d heads" % (width, heads))
        self.width, self.heads, self.eps = width, heads, eps
        if act not in ACTIVATIONS:
            raise ValueError("unknown activation %r" % act)
        self.act = ACTIVATIONS[act]
        self.blocks = []


class ClipModel:
    def __init__(self, model_dir):
        self.model_dir = model_dir
        if os.path.exists(os.path.join(model_dir, "config.json")):
            self._load_huggingface()
        elif os.path.exists(os.path.join(model_dir, "open_clip_config.json")):
            self._load_openclip()
        else:
            raise ValueError("%s: neither config.json nor open_clip_config.json" % model_dir)
        self._check_shapes()

    # ---- loading -------------------------------------------------------------------

    def _load_huggingface(self):
        with open(os.path.join(self.model_dir, "config.json")) as f:
            config = json.load(f)
        vc, tc = config.get("vision_config", {}), config.get("text_config", {})
        t = safetensors_io.load(os.path.join(self.model_dir, "model.safetensors"))
        self.layout = "huggingface"
        self.embed_dim = config.get("projection_dim", 512)
        self.image_size = vc.get("image_size", 224)
        self.patch_size = vc.get("patch_size", 32)
        self.context_length = tc.get("max_position_embeddings", 77)
        self.vision = Tower(vc.get("hidden_size", 768), vc.get("num_attention_heads", 12),
                            vc.get("hidden_act", "quick_gelu"), vc.get("layer_norm_eps", 1e-5))
        self.text = Tower(tc.get("hidden_size", 512), tc.get("num_attention_heads", 8),
                          tc.get("hidden_act", "quick_gelu"), tc.get("layer_norm_eps", 1e-5))
        vision_layers = vc.get("num_hidden_layers", 12)
        text_layers = tc.get("num_hidden_layers", 12)

        def pair(name):
            return t[name + ".weight"], t[name + ".bias"]

        def block(prefix):
            return {
                "ln_1": pair(prefix + "layer_norm1"),
                "q": pair(prefix + "self_attn.q_proj"),
                "k": pair(prefix + "self_attn.k_proj"),
                "v": pair(prefix + "self_attn.v_proj"),
                "out": pair(prefix + "self_attn.out_proj"),
                "ln_2": pair(prefix + "layer_norm2"),
                "fc1": pair(prefix + "mlp.fc1"),
                "fc2": pair(prefix + "mlp.fc2"),
            }

        v = self.vision
        v.patch = t["vision_model.embeddings.patch_embedding.weight"]
        v.class_embedding = t["vision_model.embeddings.class_embedding"]
        v.position = t["vision_model.embeddings.position_embedding.weight"]
        v.ln_pre = pair("vision_model.pre_layrnorm")
        v.blocks = [block("vision_model.encoder.layers.%d." % i) for i in range(vision_layers)]
        v.ln_post = pair("vision_model.post_layernorm")
        v.proj = t["visual_projection.weight"]
        x = self.text
        x.token = t["text_model.embeddings.token_embedding.weight"]
        x.position = t["text_model.embeddings.position_embedding.weight"]
        x.blocks = [block("text_model.encoder.layers.%d." % i) for i in range(text_layers)]
        x.ln_final = pair("text_model.final_layer_norm")
        x.proj = t["text_projection.weight"]
        self.logit_scale = t["logit_scale"]

    def _load_openclip(self):
        with open(os.path.join(self.model_dir, "open_clip_config.json")) as f:
            config = json.load(f)
        mc = config.get("model_cfg", config)
        vc, tc = mc.get("vision_cfg", {}), mc.get("text_cfg", {})
        t = safetensors_io.load(os.path.join(self.model_dir, "open_clip_model.safetensors"))
        self.layout = "openclip"
        act = "quick_gelu" if mc.get("quick_gelu", False) else "gelu"
        self.embed_dim = mc.get("embed_dim", 512)
        self.image_size = vc.get("image_size", 224)
        self.patch_size = vc.get("patch_size", 16)
        self.context_length = tc.get("context_length", 77)
        vision_width = vc.get("width", 768)
        self.vision = Tower(vision_width, vision_width // vc.get("head_width", 64), act, 1e-5)
        self.text = Tower(tc.get("width", 512), tc.get("heads", 8), act, 1e-5)

        def pair(name):
            return t[name + ".weight"], t[name + ".bias"]

        def block(prefix):
            w = t[prefix + "attn.in_proj_weight"].chunk(3, 0)
            b = t[prefix + "attn.in_proj_bias"].chunk(3, 0)
            return {
                "ln_1": pair(prefix + "ln_1"),
                "q": (w[0], b[0]), "k": (w[1], b[1]), "v": (w[2], b[2]),
                "out": pair(prefix + "attn.out_proj"),
                "ln_2": pair(prefix + "ln_2"),
                "fc1": pair(prefix + "mlp.c_fc"),
                "fc2": pair(prefix + "mlp.c_proj"),
            }

        v = self.vision
        v.patch = t["visual.conv1.weight"]
        v.class_embedding = t["visual.class_embedding"]
        v.position = t["visual.positional_embedding"]
        v.ln_pre = pair("visual.ln_pre")
        v.blocks = [block("visual.transformer.resblocks.%d." % i) for i in range(vc.get("layers", 12))]
        v.ln_post = pair("visual.ln_post")
        v.proj = t["visual.proj"].t()
        x = self.text
        x.token = t["token_embedding.weight"]
        x.position = t["positional_embedding"]
        x.blocks = [block("transformer.resblocks.%d." % i) for i in range(tc.get("layers", 12))]
        x.ln_final = pair("ln_final")
        x.proj = t["text_projection"].t()
        self.logit_scale = t["logit_scale"]

    def _check_shapes(self):
        v, x, p = self.vision, self.text, self.patch_size
        grid = self.image_size // p
        expected = [
            ("vision patch embedding", v.patch, (v.width, 3, p, p)),
            ("vision position embedding", v.position, (1 + grid * grid, v.width)),
            ("vision projection", v.proj, (self.embed_dim, v.width)),
            ("text position embedding", x.position, (self.context_length, x.width)),
            ("text projection", x.proj, (self.embed_dim, x.width)),
        ]
        for name, tensor, shape in expected:
            if tuple(tensor.shape) != shape:
                raise ValueError("%s: %s has shape %s, expected %s"
                                 % (self.model_dir, name, tuple(tensor.shape), shape))

    # ---- building blocks -----------------------------------------------------------

    @staticmethod
    def _layernorm(x, ln, eps):
        return F.layer_norm(x, (x.shape[-1],), ln[0], ln[1], eps)

    @staticmethod
    def _split_heads(x, heads):
        # [N, width] -> [heads, N, head_dim]
        return x.reshape(x.shape[0], heads, -1).transpose(0, 1)

    @staticmethod
    def _merge_heads(x):
        # [heads, N, head_dim] -> [N, width]
        return x.transpose(0, 1).reshape(x.shape[1], -1)

    def _attention(self, tower, block, x, mask):
        q = self._split_heads(F.linear(x, *block["q"]), tower.heads)
        k = self._split_heads(F.linear(x, *block["k"]), tower.heads)
        v = self._split_heads(F.linear(x, *block["v"]), tower.heads)
        scale = q.shape[-1] ** -0.5
        scores = scale * q @ k.transpose(1, 2)
        if mask is not None:
            scores = scores + mask
        return F.linear(self._merge_heads(torch.softmax(scores, -1) @ v), *block["out"])

    def _block(self, tower, block, x, mask=None):
        x = x + self._attention(tower, block, self._layernorm(x, block["ln_1"], tower.eps), mask)
        hidden = tower.act(F.linear(self._layernorm(x, block["ln_2"], tower.eps), *block["fc1"]))
        return x + F.linear(hidden, *block["fc2"])

    # ---- vision --------------------------------------------------------------------

    def _grid(self, pixels):
        if pixels.dim() != 4 or pixels.shape[0] != 1 or pixels.shape[1] != 3:
            raise ValueError("pixels must be [1, 3, H, W], got %s" % (tuple(pixels.shape),))
        height, width = pixels.shape[2], pixels.shape[3]
        p = self.patch_size
        if height % p or width % p:
            raise ValueError("image %dx%d is not a multiple of the patch size %d" % (width, height, p))
        return height // p, width // p

    def position_embedding(self, grid_h, grid_w):
        """[1 + grid_h * grid_w, width]; the patch part resized bicubically as HuggingFace's
        interpolate_pos_encoding does when the grid is not the checkpoint's."""
        position = self.vision.position
        grid = self.image_size // self.patch_size
        if (grid_h, grid_w) == (grid, grid):
            return position
        patches = position[1:].reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
        patches = patches.permute(0, 2, 3, 1).reshape(grid_h * grid_w, -1)
        return torch.cat([position[:1], patches], 0)

    def _vision_input(self, pixels):
        """Tokens entering the first block: [1 + gh * gw, width], patch t at row t // gw."""
        pixels = torch.as_tensor(pixels, dtype=torch.float32)
        grid_h, grid_w = self._grid(pixels)
        v = self.vision
        patches = F.conv2d(pixels, v.patch, stride=self.patch_size)  # [1, W, gh, gw]
        patches = patches.flatten(2)[0].t()  # [gh * gw, W], row-major over the grid
        x = torch.cat([v.class_embedding[None], patches], 0)
        x = x + self.position_embedding(grid_h, grid_w)
        return self._layernorm(x, v.ln_pre, v.eps), grid_h, grid_w

    def _project_vision(self, x):
        v = self.vision
        return F.linear(self._layernorm(x, v.ln_post, v.eps), v.proj)

    @torch.no_grad()
    def encode_image(self, pixels):
        x, _, _ = self._vision_input(pixels)
        for block in self.vision.blocks:
            x = self._block(self.vision, block, x)
        return self._project_vision(x[0])

    @staticmethod
    def naclip_neighbourhood(grid_h, grid_w):
        """Ω [1 + n, 1 + n]: Gaussian of the squared grid distance between patch tokens, 0 in
        the CLS row and column."""
        rows = torch.arange(grid_h * grid_w) // grid_w
        cols = torch.arange(grid_h * grid_w) % grid_w
        dist2 = (rows[:, None] - rows[None, :]) ** 2 + (cols[:, None] - cols[None, :]) ** 2
        omega = torch.zeros(1 + grid_h * grid_w, 1 + grid_h * grid_w)
        omega[1:, 1:] = torch.exp(-dist2.float() / (2 * NACLIP_SIGMA ** 2))
        return omega

    def _dense_attention(self, mode, q, k, grid_h, grid_w):
        """A [heads, N, N] of the reduced last block for a dense mode."""
        scale = q.shape[-1] ** -0.5
        if mode == "naclip":
            omega = self.naclip_neighbourhood(grid_h, grid_w)
            return torch.softmax(scale * k @ k.transpose(1, 2) + omega, -1)
        if mode == "clearclip":
            return torch.softmax(scale * q @ q.transpose(1, 2), -1)
        if mode == "sclip":
            return (torch.softmax(scale * q @ q.transpose(1, 2), -1)
                    + torch.softmax(scale * k @ k.transpose(1, 2), -1))
        if mode == "maskclip":
            n = q.shape[1]
            return torch.eye(n).expand(q.shape[0], n, n)
        raise ValueError("unknown dense mode %r (expected one of %s)" % (mode, ", ".join(DENSE_MODES)))

    @torch.no_grad()
    def encode_dense(self, pixels, mode="naclip"):
        """[H/p, W/p, E]: the last block reduced to out_proj(A V), no residual, no MLP."""
        v = self.vision
        x, grid_h, grid_w = self._vision_input(pixels)
        for block in v.blocks[:-1]:
            x = self._block(v, block, x)
        last = v.blocks[-1]
        normed = self._layernorm(x, last["ln_1"], v.eps)
        q = self._split_heads(F.linear(normed, *last["q"]), v.heads)
        k = self._split_heads(F.linear(normed, *last["k"]), v.heads)
        values = self._split_heads(F.linear(normed, *last["v"]), v.heads)
        attention = self._dense_attention(mode, q, k, grid_h, grid_w)
        y = F.linear(self._merge_heads(attention @ values), *last["out"])
        return self._project_vision(y[1:]).reshape(grid_h, grid_w, -1)

    @torch.no_grad()
    def encode_regions(self, pixels, boxes_xywh, mode="naclip"):
        """[n, E]: RoI-Align (aligned, 7x7 bins, 2x2 samples) on the dense map, the mean of the
        49 bins, L2-normalised."""
        dense = self.encode_dense(pixels, mode)
        regions = [roi_align_mean(dense, box, self.patch_size) for box in boxes_xywh]
        regions = torch.stack(regions, 0)
        return regions / regions.norm(dim=-1, keepdim=True)

    # ---- text ----------------------------------------------------------------------

    @torch.no_grad()
    def encode_text(self, token_ids):
        ids = torch.as_tensor(list(token_ids), dtype=torch.long)
        if ids.shape != (self.context_length,):
            raise ValueError("expected %d token ids, got %d" % (self.context_length, ids.numel()))
        end_positions = (ids == END_TOKEN).nonzero()
        if end_positions.numel() == 0:
            raise ValueError("token ids hold no end token %d" % END_TOKEN)
        x_tower = self.text
        x = x_tower.token[ids] + x_tower.position
        n = ids.shape[0]
        causal = torch.full((n, n), float("-inf")).triu(1)
        for block in x_tower.blocks:
            x = self._block(x_tower, block, x, causal)
        x = self._layernorm(x, x_tower.ln_final, x_tower.eps)
        return F.linear(x[int(end_positions[0, 0])], x_tower.proj)


def _sample_weights(coords, size):
    """[len(coords), size] bilinear weights along one axis with torchvision's rules: a
    sample beyond (-1, size) contributes 0, negative positions clamp to 0, positions at or
    past the last cell take the last cell."""
    weights = torch.zeros(len(coords), size)
    for i, c in enumerate(coords.tolist()):
        if c < -1.0 or c > size:
            continue
        c = max(c, 0.0)
        low = int(c)
        if low >= size - 1:
            weights[i, size - 1] = 1.0
            continue
        frac = c - low
        weights[i, low] = 1.0 - frac
        weights[i, low + 1] = frac
    return weights


def roi_align_samples(box_xywh, patch_size, output_size=ROI_OUTPUT_SIZE,
                      sampling_ratio=ROI_SAMPLING_RATIO):
    """Sample coordinates (in dense-map cells) along y and x, bin-major: [output*ratio] each,
    as torchvision.ops.roi_align(aligned=True, spatial_scale=1/patch). Computed in float32
    like torchvision's kernel."""
    x, y, w, h = [torch.tensor(float(c), dtype=torch.float32) for c in box_xywh]
    scale = torch.tensor(1.0 / patch_size, dtype=torch.float32)
    x1, y1 = x * scale - 0.5, y * scale - 0.5
    x2, y2 = (x + w) * scale - 0.5, (y + h) * scale - 0.5
    bin_w, bin_h = (x2 - x1) / output_size, (y2 - y1) / output_size
    bins = torch.arange(output_size, dtype=torch.float32)
    sub = torch.arange(sampling_ratio, dtype=torch.float32) + 0.5
    ys = (y1 + bins[:, None] * bin_h + sub[None, :] * bin_h / sampling_ratio).reshape(-1)
    xs = (x1 + bins[:, None] * bin_w + sub[None, :] * bin_w / sampling_ratio).reshape(-1)
    return ys, xs


def roi_align(dense, box_xywh, patch_size, output_size=ROI_OUTPUT_SIZE,
              sampling_ratio=ROI_SAMPLING_RATIO):
    """dense [gh, gw, E] -> [output, output, E] bins, each the mean of its samples (samples
    outside the map count as zero)."""
    grid_h, grid_w, _ = dense.shape
    ys, xs = roi_align_samples(box_xywh, patch_size, output_size, sampling_ratio)
    wy = _sample_weights(ys, grid_h)
    wx = _sample_weights(xs, grid_w)
    # Bilinear interpolation is separable: sample (i, j) = Σ wy[i, r] wx[j, c] dense[r, c].
    samples = torch.einsum("ir,jc,rce->ije", wy, wx, dense)
    samples = samples.reshape(output_size, sampling_ratio, output_size, sampling_ratio, -1)
    return samples.mean(dim=(1, 3))


def roi_align_mean(dense, box_xywh, patch_size):
    return roi_align(dense, box_xywh, patch_size).mean(dim=(0, 1))


def load(model_dir):
    return ClipModel(model_dir)


def _main():
    import argparse
    parser = argparse.ArgumentParser(description="Print a reference embedding summary.")
    parser.add_argument("model")
    args = parser.parse_args()
    model = load(args.model)
    g = torch.Generator().manual_seed(0)
    pixels = torch.randn(1, 3, model.image_size, model.image_size, generator=g)
    print("layout %s, embed %d, image %d, patch %d" % (model.layout, model.embed_dim,
                                                        model.image_size, model.patch_size))
    print("image embedding[:4]", model.encode_image(pixels)[:4].tolist())


if __name__ == "__main__":
    _main()
