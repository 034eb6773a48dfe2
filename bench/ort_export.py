#!/usr/bin/env python3
"""Export a model directory's towers to ONNX for the ONNX Runtime comparison (bench_runtime.py).

The towers are written here with torch.nn.functional from the weights tests/reference/clip_ref.py
loads, with a batch dimension (which clip_ref lacks), and checked against clip_ref before export:
  vision.onnx  pixels [batch, 3, H, W] float32 -> embedding [batch, E]
  text.onnx    ids [batch, 77] int64 -> embedding [batch, E] (pooled at the end token, the
               largest id, as CLIP does)

usage: ort_export.py MODEL_DIR OUT_DIR [--size 224]
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
import clip_ref  # noqa: E402


class Tower(torch.nn.Module):
    """Pre-LN transformer blocks over [batch, tokens, width]."""

    def __init__(self, tower):
        super().__init__()
        # plain ints: the exporter needs the normalised shape static
        self.width, self.heads, self.eps, self.act = tower.width, tower.heads, tower.eps, tower.act
        self.blocks = []
        for i, block in enumerate(tower.blocks):
            params = {}
            for name, (weight, bias) in block.items():
                params[name + "_w"] = torch.nn.Parameter(weight.float(), requires_grad=False)
                params[name + "_b"] = torch.nn.Parameter(bias.float(), requires_grad=False)
            module = torch.nn.ParameterDict(params)
            self.add_module("block%d" % i, module)
            self.blocks.append(module)

    def attention(self, p, x, mask):
        batch, tokens = x.shape[0], x.shape[1]
        width = self.width
        head_dim = width // self.heads

        def heads(y):
            return y.reshape(batch, tokens, self.heads, head_dim).transpose(1, 2)

        q = heads(F.linear(x, p["q_w"], p["q_b"]))
        k = heads(F.linear(x, p["k_w"], p["k_b"]))
        v = heads(F.linear(x, p["v_w"], p["v_b"]))
        scores = (q @ k.transpose(-1, -2)) * head_dim ** -0.5
        if mask is not None:
            scores = scores + mask
        out = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(batch, tokens, width)
        return F.linear(out, p["out_w"], p["out_b"])

    def run(self, x, mask=None):
        width = self.width
        for p in self.blocks:
            x = x + self.attention(p, F.layer_norm(x, (width,), p["ln_1_w"], p["ln_1_b"], self.eps),
                                   mask)
            hidden = F.linear(F.layer_norm(x, (width,), p["ln_2_w"], p["ln_2_b"], self.eps),
                              p["fc1_w"], p["fc1_b"])
            x = x + F.linear(self.act(hidden), p["fc2_w"], p["fc2_b"])
        return x


class Vision(torch.nn.Module):
    def __init__(self, model, size):
        super().__init__()
        v = model.vision
        grid = size // model.patch_size
        self.patch_size, self.eps = model.patch_size, v.eps
        self.tower = Tower(v)
        self.patch = torch.nn.Parameter(v.patch.float(), requires_grad=False)
        self.cls = torch.nn.Parameter(v.class_embedding.float(), requires_grad=False)
        self.position = torch.nn.Parameter(model.position_embedding(grid, grid).float(),
                                           requires_grad=False)
        self.ln_pre = torch.nn.ParameterList([torch.nn.Parameter(t.float(), requires_grad=False)
                                              for t in v.ln_pre])
        self.ln_post = torch.nn.ParameterList([torch.nn.Parameter(t.float(), requires_grad=False)
                                               for t in v.ln_post])
        self.proj = torch.nn.Parameter(v.proj.float(), requires_grad=False)

    def forward(self, pixels):
        patches = F.conv2d(pixels, self.patch, stride=self.patch_size).flatten(2).transpose(1, 2)
        width = self.tower.width
        cls = self.cls.reshape(1, 1, width).expand(patches.shape[0], 1, width)
        x = torch.cat([cls, patches], 1) + self.position
        x = F.layer_norm(x, (width,), self.ln_pre[0], self.ln_pre[1], self.eps)
        x = self.tower.run(x)
        cls_out = F.layer_norm(x[:, 0], (width,), self.ln_post[0], self.ln_post[1], self.eps)
        return F.linear(cls_out, self.proj)


class Text(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        t = model.text
        n = model.context_length
        self.eps = t.eps
        self.tower = Tower(t)
        self.token = torch.nn.Parameter(t.token.float(), requires_grad=False)
        self.position = torch.nn.Parameter(t.position.float(), requires_grad=False)
        self.ln_final = torch.nn.ParameterList([torch.nn.Parameter(x.float(), requires_grad=False)
                                                for x in t.ln_final])
        self.proj = torch.nn.Parameter(t.proj.float(), requires_grad=False)
        self.register_buffer("mask", torch.full((n, n), float("-inf")).triu(1))

    def forward(self, ids):
        x = self.token[ids] + self.position
        x = self.tower.run(x, self.mask)
        width = self.tower.width
        x = F.layer_norm(x, (width,), self.ln_final[0], self.ln_final[1], self.eps)
        pooled = x[torch.arange(x.shape[0]), ids.argmax(-1)]
        return F.linear(pooled, self.proj)


def relative_error(got, expected):
    return float((got - expected).norm() / expected.norm())


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    model = clip_ref.load(args.model)
    generator = torch.Generator().manual_seed(3)

    vision = Vision(model, args.size).eval()
    pixels = torch.randn(2, 3, args.size, args.size, generator=generator)
    with torch.no_grad():
        got = vision(pixels)
    for i in range(2):
        error = relative_error(got[i], model.encode_image(pixels[i:i + 1]))
        if error > 1e-4:
            raise SystemExit("exported vision tower differs from clip_ref: %.3g" % error)
    torch.onnx.export(vision, pixels[:1], os.path.join(args.out, "vision.onnx"),
                      input_names=["pixels"], output_names=["embedding"],
                      dynamic_axes={"pixels": {0: "batch"}, "embedding": {0: "batch"}},
                      opset_version=14, do_constant_folding=True)

    text = Text(model).eval()
    ids = torch.zeros(2, model.context_length, dtype=torch.long)
    ids[0, :7] = torch.tensor([49406, 320, 1125, 539, 320, 2368, 49407])
    ids[1, :4] = torch.tensor([49406, 320, 2368, 49407])
    with torch.no_grad():
        got = text(ids)
    for i in range(2):
        error = relative_error(got[i], model.encode_text(ids[i].tolist()))
        if error > 1e-4:
            raise SystemExit("exported text tower differs from clip_ref: %.3g" % error)
    torch.onnx.export(text, ids[:1], os.path.join(args.out, "text.onnx"),
                      input_names=["ids"], output_names=["embedding"],
                      dynamic_axes={"ids": {0: "batch"}, "embedding": {0: "batch"}},
                      opset_version=14, do_constant_folding=True)
    print("exported %s and %s" % (os.path.join(args.out, "vision.onnx"),
                                  os.path.join(args.out, "text.onnx")))


if __name__ == "__main__":
    main()
