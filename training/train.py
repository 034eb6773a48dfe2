#!/usr/bin/python3
# Trains the CLIP baseline or the UMG model from scratch on generated scenes and exports a
# HuggingFace-layout model directory that the C runtime loads.
"""Train a tiny CLIP (image-text only) or UMG (image + region + pixel alignment) model.

  train.py --model clip|umg --steps N --seed S --out DIR [--batch 64] [--probe-dir D]

Both models see the same scenes in the same order (scene i of step s is
scenes.generate("train", seed, s * batch + i)) with the same budget of steps.

  clip  every step: symmetric image-caption InfoNCE; all parameters trained.
  umg   stage 1 (the first 1 - tune_fraction of the steps): image-caption InfoNCE
        + region-text loss: RoI-Align of the dense map over each thing box, classified
          against the text embeddings of every training colour-shape tag
        + pixel-text loss: mask pooling of the dense map over each thing instance and
          stuff mask, classified against every training thing tag and stuff name
        + segmentation loss: per-pixel cross-entropy of the runtime's segmentation (cell
          logits upsampled bilinearly), every segment weighted the same
        (the dense map is the runtime's reduced last block; its mode cycles through
        --dense-modes step by step so every runtime mode is trained); all parameters.
        stage 2 (the last tune_fraction of the steps): parameter-efficient tuning of the
        dense head: everything frozen except low-rank adapters (LoRA, rank --lora-rank) on
        the q, k, v and out projections of the last vision block, the block both the dense
        path and the CLS path end in; same losses, so the image embedding stays aligned.
        export() folds the adapters into those four weights.

Tags are wrapped in a prompt template drawn per step ("a {}", "a photo of a {}.", "{}"),
so the runtime's default "a photo of a {}." prompts match what training saw.

Every step appends one JSON line to --log (default OUT/training_log.jsonl): step, stage,
loss and its parts. --probe-dir writes a held-out scene (PNG, normalised .npy) and what
the trained PyTorch model computes for it (image, dense maps in every mode, regions,
texts, classification), so tests can compare the exported model run by the C runtime.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model as clip_model  # noqa: E402
import scenes  # noqa: E402
import vocab as vocabulary  # noqa: E402

PROMPT_TEMPLATES = ["a {}", "a photo of a {}.", "{}"]
CLASSIFY_TEMPLATE = "a photo of a {}."  # the umgclip CLI's default


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["clip", "umg"], required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="model directory to export")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=None,
                        help="warm-up steps (default: 5%% of the steps, at most 100)")
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--dense-modes", default=",".join(clip_model.DENSE_MODES),
                        help="dense modes the UMG losses cycle through")
    parser.add_argument("--tune-fraction", type=float, default=0.1,
                        help="UMG: share of the steps spent tuning only the dense-head adapters")
    parser.add_argument("--lora-rank", type=int, default=8)
    parser.add_argument("--lora-lr", type=float, default=1e-3)
    parser.add_argument("--region-weight", type=float, default=1.0)
    parser.add_argument("--pixel-weight", type=float, default=1.0)
    parser.add_argument("--segmentation-weight", type=float, default=1.0,
                        help="UMG: weight of the per-pixel segmentation loss")
    parser.add_argument("--word-weight", type=float, default=0.0,
                        help="umg: weight of the loss that ranks each region against the colour "
                             "words alone and the shape words alone (default 0: off)")
    parser.add_argument("--free-colours", type=float, default=0.3,
                        help="share of training things repainted in a colour no word names "
                             "(pink, cyan, brown, teal, grey) and called by their shape alone, "
                             "\"a ring\": shape without a colour to lean on (default 0.3; 0: "
                             "off)")
    parser.add_argument("--hard-negatives", type=int, default=0,
                        help="shape-swapped captions per scene added as negative texts")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=N",
                        help="override a number of model.TINY, e.g. --set patch_size=4")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    parser.add_argument("--log", help="JSON lines of losses (default OUT/training_log.jsonl)")
    parser.add_argument("--log-every", type=int, default=10, help="print every N steps")
    parser.add_argument("--probe-dir", help="write a held-out probe and the model's outputs")
    args = parser.parse_args(argv)
    args.dense_modes = [m for m in args.dense_modes.split(",") if m]
    for mode in args.dense_modes:
        if mode not in clip_model.DENSE_MODES:
            parser.error("unknown dense mode %r" % mode)
    if args.steps < 1 or args.batch < 2:
        parser.error("--steps must be >= 1 and --batch >= 2")
    if not 0.0 <= args.tune_fraction < 1.0:
        parser.error("--tune-fraction must be in [0, 1)")
    if not 0.0 <= args.free_colours <= 1.0:
        parser.error("--free-colours %g: want a share in [0, 1]" % args.free_colours)
    if args.free_colours > 0 and args.word_weight > 0:
        parser.error("--free-colours and --word-weight: a thing of an unnamed colour has no "
                     "colour word to rank (add --free-colours 0)")
    args.config = {}
    for item in args.set:
        key, _, value = item.partition("=")
        if not isinstance(clip_model.TINY.get(key), int) or not value.isdigit() or int(value) < 1:
            parser.error("--set %r: want KEY=N with KEY a number of model.TINY (%s)"
                         % (item, ", ".join(k for k, v in clip_model.TINY.items()
                                            if isinstance(v, int))))
        args.config[key] = int(value)
    cfg = dict(clip_model.TINY, **args.config)
    for whole, part in [("image_size", "patch_size"), ("vision_width", "vision_heads"),
                        ("text_width", "text_heads")]:
        if cfg[whole] % cfg[part]:
            parser.error("%s %d is not a multiple of %s %d" % (whole, cfg[whole], part, cfg[part]))
    return args


class Batch:
    """One step's scenes as tensors, plus the pooling weights of their boxes and masks."""

    def __init__(self, scene_list, vocab, context_length, patch_size, tags, negatives=()):
        self.pixels = clip_model.pixels_from_uint8(np.stack([s.image for s in scene_list]))
        self.captions = [s.caption for s in scene_list] + list(negatives)
        self.caption_ids = torch.tensor([vocab.tokenize(c, context_length) for c in self.captions])
        grid = self.pixels.shape[2] // patch_size
        # regions and masks as (scene index, pooling weights over that scene's cells, tag)
        self.region_scene, self.region_tag, boxes = [], [], []
        self.region_colour, self.region_shape = [], []
        self.mask_scene, self.mask_tag, masks = [], [], []
        for i, s in enumerate(scene_list):
            for t in s.things:
                # a thing in an unnamed colour is tagged by its shape word alone
                tag = t.shape if t.colour is None else scenes.thing_tag(t.colour, t.shape)
                self.region_scene.append(i)
                self.region_tag.append(tag)
                self.region_colour.append(t.colour)
                self.region_shape.append(t.shape)
                boxes.append(t.box)
                self.mask_scene.append(i)
                self.mask_tag.append(tag)
                masks.append(t.mask)
            for st in s.stuff:
                self.mask_scene.append(i)
                self.mask_tag.append(st.name)
                masks.append(st.mask)
        self.region_weights = clip_model.roi_align_weights(boxes, grid, grid, patch_size)
        self.mask_weights = clip_model.mask_pool_weights(torch.as_tensor(np.stack(masks)),
                                                         patch_size)
        # per pixel: the index of its label in tags, and a weight of 1 / (its segment's
        # area), so every thing and stuff segment counts the same whatever its size
        size = self.pixels.shape[2]
        self.label_map = torch.zeros((len(scene_list), size, size), dtype=torch.long)
        self.pixel_weight = torch.zeros((len(scene_list), size, size))
        for i, tag, mask in zip(self.mask_scene, self.mask_tag, masks):
            if tag not in tags:
                continue  # a shape word alone: the segmentation loss leaves its pixels out
            mask = torch.as_tensor(mask)
            self.label_map[i][mask] = tags.index(tag)
            self.pixel_weight[i][mask] = 1.0 / max(int(mask.sum()), 1)


def shape_swapped_captions(scene, count, rng):
    """Captions of scene with one thing's shape changed, to a shape that thing's colour has
    in the training pairs: texts that only shape tells apart from the true caption."""
    allowed = set(scenes.pairs("train"))
    swaps = [(t, s) for t in scene.things for s in scenes.SHAPES
             if s != t.shape and (t.colour, s) in allowed]
    picked = rng.permutation(len(swaps))[:count]
    return [scene.caption.replace(scenes.thing_tag(t.colour, t.shape),
                                  scenes.thing_tag(t.colour, s), 1)
            for t, s in (swaps[i] for i in picked)]


# Colours no word of the vocabulary names, far from the eight named ones and from the stuff.
UNNAMED_COLOURS = [(0.98, 0.55, 0.72), (0.15, 0.85, 0.88), (0.45, 0.27, 0.10),
                   (0.00, 0.48, 0.45), (0.52, 0.52, 0.54)]


def free_coloured(scene, share, rng):
    """scene with each thing, at probability share, repainted (its visible pixels, with the
    generator's lighting and noise) in an unnamed colour and called by its shape alone in
    the caption: "a red ring" becomes "a ring". Such things have colour None."""
    things, caption, image = [], scene.caption, None
    for t in scene.things:
        if rng.random() >= share:
            things.append(t)
            continue
        if image is None:
            image = scene.image.astype(np.float64) / 255.0
        x, y, w, h = t.box
        cy, cx, radius = y + h / 2.0, x + w / 2.0, max(w, h) / 2.0
        ys, xs = np.mgrid[0:image.shape[0], 0:image.shape[1]] + 0.5
        light = np.clip(1.0 + 0.12 * ((cy - ys) + (cx - xs)) / max(radius, 1.0) / 2.0, 0.8, 1.15)
        rgb = np.clip(np.asarray(UNNAMED_COLOURS[int(rng.integers(len(UNNAMED_COLOURS)))])
                      + rng.uniform(-0.04, 0.04, 3), 0.0, 1.0)
        painted = rgb * light[..., None] + rng.normal(0.0, 0.015, image.shape)
        image[t.mask] = painted[t.mask]
        caption = caption.replace(t.phrase, "a " + t.shape, 1)
        things.append(t._replace(colour=None, phrase="a " + t.shape))
    if image is None:
        return scene
    pixels = np.clip(np.round(np.clip(image, 0.0, 1.0) * 255.0), 0, 255).astype(np.uint8)
    return scene._replace(image=pixels, caption=caption, things=things)


def make_batch(args, step, vocab, cfg, tags):
    first = step * args.batch
    scene_list = [scenes.generate("train", args.seed, first + i, cfg["image_size"])
                  for i in range(args.batch)]
    if args.free_colours > 0:
        rng = np.random.default_rng([args.seed, 13, step])
        scene_list = [free_coloured(s, args.free_colours, rng) for s in scene_list]
    negatives = []
    if args.hard_negatives:
        rng = np.random.default_rng([args.seed, 11, step])
        for scene in scene_list:
            negatives += shape_swapped_captions(scene, args.hard_negatives, rng)
    return Batch(scene_list, vocab, cfg["context_length"], cfg["patch_size"], tags, negatives)


def contrastive_loss(image, text, captions, scale):
    """Symmetric InfoNCE; identical captions in a batch are all counted as matches. Texts
    beyond the images (captions[len(image):], hard negatives) are extra columns of the
    image-to-text direction only."""
    image = F.normalize(image, dim=-1)
    text = F.normalize(text, dim=-1)
    n = image.shape[0]
    logits = scale * image @ text.t()
    same = torch.tensor([[a == b for b in captions] for a in captions[:n]], dtype=torch.float32)
    to_text = same / same.sum(1, keepdim=True)
    to_image = same[:, :n] / same[:, :n].sum(1, keepdim=True)
    return 0.5 * (torch.sum(-to_text * F.log_softmax(logits, 1), 1).mean()
                  + torch.sum(-to_image * F.log_softmax(logits[:, :n].t(), 1), 1).mean())


def pooled_loss(dense_flat, scene_index, weights, tags, candidates, candidate_embeddings, scale):
    """Cross-entropy of pooled dense features against the candidate tag embeddings."""
    if not tags:
        return torch.zeros(())
    cells = dense_flat[torch.tensor(scene_index)]  # [n, cells, E]
    pooled = F.normalize(torch.einsum("nc,nce->ne", weights, cells), dim=-1)
    logits = scale * pooled @ F.normalize(candidate_embeddings, dim=-1).t()
    targets = torch.tensor([candidates.index(t) for t in tags])
    return F.cross_entropy(logits, targets)


def mixed_pooled_loss(dense_flat, scene_index, weights, tags, candidates, candidate_embeddings,
                      words, word_embeddings, scale):
    """pooled_loss where tags outside candidates (things of an unnamed colour: a shape word
    alone) are ranked among words instead; the mean over every region of both."""
    own = [i for i, t in enumerate(tags) if t in candidates]
    if len(own) == len(tags):
        return pooled_loss(dense_flat, scene_index, weights, tags, candidates,
                           candidate_embeddings, scale)
    total = torch.zeros(())
    for part, names, embeddings in ((own, candidates, candidate_embeddings),
                                    ([i for i in range(len(tags)) if i not in own], words,
                                     word_embeddings)):
        if part:
            total = total + len(part) * pooled_loss(
                dense_flat, [scene_index[i] for i in part], weights[part],
                [tags[i] for i in part], names, embeddings, scale)
    return total / len(tags)


def segmentation_loss(dense, label_map, pixel_weight, candidate_embeddings, scale):
    """Per-pixel cross-entropy of the segmentation the runtime computes (umgclip_segment):
    each cell's cosine with every candidate, times the logit scale, upsampled bilinearly
    (half-pixel centres), softmax over candidates; weighted per pixel. To save time it is
    taken on every other pixel and row: logits at half the image size against the labels
    of one pixel of each 2x2 block."""
    label_map, pixel_weight = label_map[:, ::2, ::2], pixel_weight[:, ::2, ::2]
    cells = F.normalize(dense, dim=-1)  # [B, gh, gw, E]
    logits = scale * torch.einsum("bhwe,ce->bchw", cells,
                                  F.normalize(candidate_embeddings, dim=-1))
    logits = F.interpolate(logits, size=label_map.shape[-2:], mode="bilinear",
                           align_corners=False)
    per_pixel = F.cross_entropy(logits, label_map, reduction="none")
    return (per_pixel * pixel_weight).sum() / pixel_weight.sum()


def learning_rate(step, first, last, peak, warmup):
    """Linear warm-up then cosine decay to a tenth, over steps [first, last)."""
    position = step - first
    length = max(last - first, 1)
    if position < warmup:
        return peak * (position + 1) / warmup
    progress = (position - warmup) / max(length - warmup, 1)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def make_optimizer(parameters, lr, weight_decay):
    decay = [p for p in parameters if p.dim() >= 2]
    no_decay = [p for p in parameters if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr)


def train(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    vocab = vocabulary.build()
    cfg = dict(clip_model.TINY, vocab_size=len(vocab), **args.config)
    model = clip_model.ClipModel(cfg)
    train_pairs = scenes.pairs("train")
    thing_tags = [scenes.thing_tag(c, s) for c, s in train_pairs]
    all_tags = thing_tags + scenes.STUFF

    umg = args.model == "umg"
    tune_from = args.steps - int(round(args.steps * args.tune_fraction)) if umg else args.steps
    warmup = args.warmup if args.warmup is not None else max(1, min(100, args.steps // 20))
    optimizer = make_optimizer(list(model.parameters()), args.lr, args.weight_decay)
    stage_first, stage_last, peak = 0, tune_from, args.lr
    template_rng = np.random.default_rng([args.seed, 7])

    log_path = args.log or os.path.join(args.out, "training_log.jsonl")
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    log = open(log_path, "w")
    log.write(json.dumps({"args": vars(args), "config": cfg}) + "\n")
    started = time.time()
    for step in range(args.steps):
        if umg and step == tune_from:
            for p in model.parameters():
                p.requires_grad_(False)
            adapters = model.add_dense_adapters(rank=args.lora_rank, alpha=float(args.lora_rank))
            optimizer = make_optimizer(adapters, args.lora_lr, 0.0)
            stage_first, stage_last, peak = tune_from, args.steps, args.lora_lr
        stage = 2 if step >= tune_from else 1
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, stage_first, stage_last, peak,
                                        warmup if stage == 1 else 1)

        batch = make_batch(args, step, vocab, cfg, all_tags)
        mode = args.dense_modes[step % len(args.dense_modes)] if umg else None
        image, dense = model.encode_image(batch.pixels, mode)
        text = model.encode_text(batch.caption_ids, vocab.end_id)
        scale = model.scale()
        parts = {"image": contrastive_loss(image, text, batch.captions, scale)}
        if umg:
            template = PROMPT_TEMPLATES[int(template_rng.integers(len(PROMPT_TEMPLATES)))]
            tag_ids = torch.tensor([vocab.tokenize(template.format(t), cfg["context_length"])
                                    for t in all_tags])
            tag_embeddings = model.encode_text(tag_ids, vocab.end_id)
            dense_flat = dense.reshape(dense.shape[0], -1, dense.shape[-1])
            shape_words = None
            if args.free_colours > 0:
                shape_ids = torch.tensor([vocab.tokenize(template.format(w), cfg["context_length"])
                                          for w in scenes.SHAPES])
                shape_words = model.encode_text(shape_ids, vocab.end_id)
            parts["region"] = args.region_weight * mixed_pooled_loss(
                dense_flat, batch.region_scene, batch.region_weights, batch.region_tag,
                thing_tags, tag_embeddings[:len(thing_tags)], scenes.SHAPES, shape_words, scale)
            parts["pixel"] = args.pixel_weight * mixed_pooled_loss(
                dense_flat, batch.mask_scene, batch.mask_weights, batch.mask_tag, all_tags,
                tag_embeddings, scenes.SHAPES, shape_words, scale)
            if args.word_weight > 0:
                # colour and shape as separate words: the region must name each on its own,
                # so what it learns of "ring" is not tied to the colours rings came in
                colours, shapes = scenes.COLOUR_NAMES, scenes.SHAPES
                word_ids = torch.tensor([vocab.tokenize(template.format(w), cfg["context_length"])
                                         for w in colours + shapes])
                words = model.encode_text(word_ids, vocab.end_id)
                parts["words"] = 0.5 * args.word_weight * (
                    pooled_loss(dense_flat, batch.region_scene, batch.region_weights,
                                batch.region_colour, colours, words[:len(colours)], scale)
                    + pooled_loss(dense_flat, batch.region_scene, batch.region_weights,
                                  batch.region_shape, shapes, words[len(colours):], scale))
            if args.segmentation_weight > 0:
                parts["segmentation"] = args.segmentation_weight * segmentation_loss(
                    dense, batch.label_map, batch.pixel_weight, tag_embeddings, scale)
        loss = sum(parts.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

        record = {"step": step, "stage": stage, "loss": round(loss.item(), 6),
                  "seconds": round(time.time() - started, 2)}
        record.update({k: round(v.item(), 6) for k, v in parts.items()})
        if mode:
            record["dense_mode"] = mode
        log.write(json.dumps(record) + "\n")
        log.flush()
        if step % args.log_every == 0 or step == args.steps - 1:
            print(json.dumps(record), flush=True)
    log.close()

    model.eval()
    metadata = {"format": "pt", "umgclip_training": json.dumps(
        {"model": args.model, "steps": args.steps, "seed": args.seed, "batch": args.batch})}
    model.export(args.out, vocab, args.dtype, metadata)
    if args.probe_dir:
        write_probe(model, vocab, cfg, args.probe_dir)
    return 0


@torch.no_grad()
def write_probe(model, vocab, cfg, probe_dir):
    """A held-out scene and the trained model's outputs on it, for checking the export."""
    os.makedirs(probe_dir, exist_ok=True)
    scene = scenes.generate("heldout", 0, 0, cfg["image_size"])
    scenes.write_png(os.path.join(probe_dir, "probe.png"), scene.image)
    pixels = clip_model.pixels_from_uint8(scene.image[None])
    np.save(os.path.join(probe_dir, "probe.npy"), pixels.numpy().astype(np.float32))

    image, _ = model.encode_image(pixels)
    dense = {}
    for mode in clip_model.DENSE_MODES:
        dense[mode] = model.encode_image(pixels, mode)[1][0]
    boxes = [list(t.box) for t in scene.things]
    weights = clip_model.roi_align_weights(boxes, dense["naclip"].shape[0],
                                           dense["naclip"].shape[1], cfg["patch_size"])
    regions = F.normalize(weights @ dense["naclip"].reshape(-1, dense["naclip"].shape[-1]), dim=-1)

    # the scene's own things first, then other held-out pairings as distractors
    things = [scenes.thing_tag(t.colour, t.shape) for t in scene.things]
    others = [scenes.thing_tag(c, s) for c, s in scenes.pairs("heldout")]
    labels = list(dict.fromkeys(things + others))[:6] + scenes.STUFF
    texts = [scene.caption] + [t.phrase for t in scene.things] + labels
    ids = torch.tensor([vocab.tokenize(t, cfg["context_length"]) for t in texts])
    text_embeddings = model.encode_text(ids, vocab.end_id)
    label_ids = torch.tensor([vocab.tokenize(CLASSIFY_TEMPLATE.format(t), cfg["context_length"])
                              for t in labels])
    label_embeddings = F.normalize(model.encode_text(label_ids, vocab.end_id), dim=-1)
    scores = torch.softmax(model.scale() * F.normalize(image, dim=-1) @ label_embeddings.t(), -1)

    with open(os.path.join(probe_dir, "probe.json"), "w") as f:
        json.dump({
            "image_embedding": image[0].tolist(),
            "dense": {mode: d.tolist() for mode, d in dense.items()},
            "boxes": boxes, "regions_naclip": regions.tolist(),
            "texts": texts,
            "tokens": [row[:row.index(vocab.end_id) + 1] for row in ids.tolist()],
            "text_embeddings": text_embeddings.tolist(),
            "classify": {"labels": labels, "template": CLASSIFY_TEMPLATE,
                         "scores": scores[0].tolist()},
        }, f)


def main():
    return train(parse_args())


if __name__ == "__main__":
    sys.exit(main())
