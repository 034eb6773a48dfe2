/* Vision graph: patches → transformer → CLS embedding; the last block also branches into the
 * "reduced" dense path (ClearCLIP / NACLIP): attention only, no residual, no MLP. */
#include "vit.h"

#include "transformer.h"

#include <math.h>

static gdouble
cubic_near (gdouble x, gdouble a) /* |x| <= 1 */
{
  return ((a + 2) * x - (a + 3)) * x * x + 1;
}

static gdouble
cubic_far (gdouble x, gdouble a) /* 1 < |x| < 2 */
{
  return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
}

/* Source position and the four cubic weights for output index out, as PyTorch computes them
 * for align_corners = FALSE. */
static gint
cubic_taps (gint out, gint in_size, gint out_size, gdouble weights[4])
{
  const gdouble a = -0.75;
  gdouble scale = (gfloat) in_size / (gfloat) out_size;
  gdouble source = scale * (out + 0.5) - 0.5;
  gint base = (gint) floor (source);
  gdouble t = source - base;
  weights[0] = cubic_far (t + 1, a);
  weights[1] = cubic_near (t, a);
  weights[2] = cubic_near (1 - t, a);
  weights[3] = cubic_far (2 - t, a);
  return base;
}

gfloat *
umg_vision_position_embedding (const UmgModel *model, gint grid_h, gint grid_w)
{
  const UmgVision *vision = &model->vision;
  const gint width = vision->tower.width, grid = vision->grid;
  g_autofree gfloat *source = umg_model_weight_f32 (model, vision->position_embedding);
  gfloat *out;

  if (grid_h == grid && grid_w == grid)
    return g_steal_pointer (&source);

  out = g_new (gfloat, (1 + (gsize) grid_h * grid_w) * width);
  for (gint c = 0; c < width; c++)
    out[c] = source[c];
  for (gint y = 0; y < grid_h; y++)
    {
      gdouble wy[4], wx[4];
      gint base_y = cubic_taps (y, grid, grid_h, wy);
      for (gint x = 0; x < grid_w; x++)
        {
          gint base_x = cubic_taps (x, grid, grid_w, wx);
          gfloat *dst = out + (1 + (gsize) y * grid_w + x) * width;
          for (gint c = 0; c < width; c++)
            {
              gdouble value = 0;
              for (gint i = 0; i < 4; i++)
                {
                  gint sy = CLAMP (base_y - 1 + i, 0, grid - 1);
                  gdouble row = 0;
                  for (gint j = 0; j < 4; j++)
                    {
                      gint sx = CLAMP (base_x - 1 + j, 0, grid - 1);
                      row += wx[j] * source[(1 + (gsize) sy * grid + sx) * width + c];
                    }
                  value += wy[i] * row;
                }
              dst[c] = value;
            }
        }
    }
  return out;
}

/* NACLIP's neighbourhood prior: a Gaussian (σ = 5 cells) of the distance between the patches
 * of two tokens; zero for the class token. */
static gfloat *
neighbourhood_bias (gint grid_h, gint grid_w)
{
  const gint tokens = 1 + grid_h * grid_w;
  const gdouble sigma = 5.0;
  gfloat *bias = g_new0 (gfloat, (gsize) tokens * tokens);
  for (gint i = 1; i < tokens; i++)
    for (gint j = 1; j < tokens; j++)
      {
        gint dr = (i - 1) / grid_w - (j - 1) / grid_w;
        gint dc = (i - 1) % grid_w - (j - 1) % grid_w;
        bias[(gsize) i * tokens + j] = exp (-(dr * dr + dc * dc) / (2 * sigma * sigma));
      }
  return bias;
}

void
umg_vision_boxes_to_cells (const UmgModel *model, const gfloat *boxes, guint n_boxes, gfloat *cells)
{
  const gfloat scale = 1.0f / model->vision.patch_size;
  for (guint i = 0; i < n_boxes; i++)
    {
      const gfloat *box = boxes + 4 * i;
      gfloat *cell = cells + 4 * i;
      cell[0] = box[0] * scale - 0.5f;
      cell[1] = box[1] * scale - 0.5f;
      cell[2] = (box[0] + box[2]) * scale - 0.5f;
      cell[3] = (box[1] + box[3]) * scale - 0.5f;
    }
}

/* The dense path of the last block, from the qkv its normal path computed:
 * dense = ln_post(out_proj(A · V)[patches]) · proj. */
static UmgRef
push_dense_branch (UmgGraph *graph, const UmgModel *model, const UmgVisionSpec *spec,
                   const UmgBlockBuffers *buffers, gint grid_h, gint grid_w)
{
  const UmgVision *vision = &model->vision;
  const UmgTower *tower = &vision->tower;
  const UmgLayerWeights *last = &tower->layer[tower->layers - 1];
  const gint width = tower->width, tokens = buffers->seq_len, patches = grid_h * grid_w;
  UmgRef mixed = umg_graph_alloc (graph, (gsize) tokens * width);
  UmgRef projected = umg_graph_alloc (graph, (gsize) tokens * width);
  UmgRef normed = umg_graph_alloc (graph, (gsize) patches * width);
  UmgRef dense = umg_graph_alloc (graph, (gsize) patches * model->embed_dim);
  UmgBlockBuffers branch = *buffers;

  /* the branch writes its own attention output, leaving the normal path's intact */
  branch.attended = mixed;
  switch (spec->dense_mode)
    {
    case UMGCLIP_DENSE_NACLIP:
      {
        UmgTensor *bias = g_new0 (UmgTensor, 1);
        bias->name = g_strdup ("naclip.neighbourhood");
        bias->dtype = UMG_DTYPE_F32;
        bias->n_dims = 2;
        bias->shape[0] = bias->shape[1] = tokens;
        bias->n_elements = (gsize) tokens * tokens;
        bias->data = bias->owned = neighbourhood_bias (grid_h, grid_w);
        umg_push_attention (graph, tower, &branch, 0, UMG_LOGITS_KK, FALSE,
                            umg_graph_add_const (graph, bias), FALSE);
        break;
      }
    case UMGCLIP_DENSE_CLEARCLIP:
      umg_push_attention (graph, tower, &branch, 0, UMG_LOGITS_QQ, FALSE, UMG_REF_NONE, FALSE);
      break;
    case UMGCLIP_DENSE_SCLIP:
      umg_push_attention (graph, tower, &branch, 0, UMG_LOGITS_QQ, FALSE, UMG_REF_NONE, FALSE);
      umg_push_attention (graph, tower, &branch, 0, UMG_LOGITS_KK, FALSE, UMG_REF_NONE, TRUE);
      break;
    case UMGCLIP_DENSE_MASKCLIP:
    default:
      {
        UmgOp copy = { .type = UMG_OP_COPY };
        copy.src[0] = umg_ref_offset (buffers->qkv, 2 * width);
        copy.dst = mixed;
        copy.p.copy.rows = tokens;
        copy.p.copy.cols = width;
        copy.p.copy.src_stride = 3 * width;
        copy.p.copy.dst_stride = width;
        umg_graph_push (graph, &copy);
        break;
      }
    }
  umg_push_linear (graph, mixed, tokens, width, umg_ref_weight (last->out_weight),
                   umg_ref_weight (last->out_bias), width, projected, UMG_ACT_NONE, FALSE);
  umg_push_layernorm (graph, umg_ref_offset (projected, width), patches, width, width,
                      umg_ref_weight (vision->ln_post_weight),
                      umg_ref_weight (vision->ln_post_bias), tower->eps, normed, width);
  umg_push_linear (graph, normed, patches, width, umg_ref_weight (vision->projection), UMG_REF_NONE,
                   model->embed_dim, dense, UMG_ACT_NONE, FALSE);
  return dense;
}

UmgGraph *
umg_vision_graph_new (const UmgModel *model, const UmgVisionSpec *spec, GError **error)
{
  const UmgVision *vision = &model->vision;
  const UmgTower *tower = &vision->tower;
  const gint p = vision->patch_size, width = tower->width;
  const gint grid_h = spec->height / p, grid_w = spec->width / p;
  const gint patches = grid_h * grid_w, tokens = 1 + patches;
  const gint embed = model->embed_dim;
  g_autoptr (UmgGraph) graph = NULL;
  UmgBlockBuffers buffers;
  UmgRef pixels, columns, cls, embedding;
  UmgOp op;

  if (grid_h < 1 || grid_w < 1)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "image %dx%d is smaller than one %dx%d patch", spec->width, spec->height, p, p);
      return NULL;
    }
  if (spec->box_capacity > 0 && !spec->dense)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "region embeddings need the dense branch");
      return NULL;
    }

  graph = umg_graph_new ();
  pixels = umg_graph_alloc (graph, 3 * (gsize) spec->width * spec->height);
  if (spec->frame_format < 0)
    umg_graph_add_input (graph, pixels, 3 * (gsize) spec->width * spec->height);
  else
    {
      /* the frame arrives as it was captured; colour conversion and resizing run as an op */
      gsize words = (spec->frame_bytes + 3) / 4;
      UmgRef frame = umg_graph_alloc (graph, words);
      umg_graph_add_input (graph, frame, words);
      op = (UmgOp){ .type = UMG_OP_PREPROCESS };
      op.src[0] = frame;
      op.dst = pixels;
      op.p.preprocess.format = spec->frame_format;
      op.p.preprocess.width = spec->frame_width;
      op.p.preprocess.height = spec->frame_height;
      op.p.preprocess.out_w = spec->width;
      op.p.preprocess.out_h = spec->height;
      op.p.preprocess.kr = spec->frame_kr;
      op.p.preprocess.kb = spec->frame_kb;
      op.p.preprocess.full_range = spec->frame_full_range;
      for (gint i = 0; i < 3; i++)
        {
          op.p.preprocess.strides[i] = spec->frame_strides[i];
          op.p.preprocess.offsets[i] = spec->frame_offsets[i];
          op.p.preprocess.mean[i] = vision->mean[i];
          op.p.preprocess.std[i] = vision->std[i];
        }
      umg_graph_push (graph, &op);
    }
  columns = umg_graph_alloc (graph, (gsize) patches * 3 * p * p);
  umg_block_buffers_alloc (graph, tower, 1, tokens, &buffers);

  /* patch embedding: a stride-p convolution as im2col + matrix product, into rows 1.. */
  op = (UmgOp){ .type = UMG_OP_IM2COL };
  op.src[0] = pixels;
  op.dst = columns;
  op.p.im2col.channels = 3;
  op.p.im2col.height = spec->height;
  op.p.im2col.width = spec->width;
  op.p.im2col.patch = p;
  op.p.im2col.grid_h = grid_h;
  op.p.im2col.grid_w = grid_w;
  umg_graph_push (graph, &op);
  umg_push_linear (graph, columns, patches, 3 * p * p, umg_ref_weight (vision->patch_weight),
                   UMG_REF_NONE, width, umg_ref_offset (buffers.x, width), UMG_ACT_NONE, FALSE);

  op = (UmgOp){ .type = UMG_OP_COPY };
  op.src[0] = umg_ref_weight (vision->class_embedding);
  op.dst = buffers.x;
  op.p.copy.rows = 1;
  op.p.copy.cols = width;
  op.p.copy.src_stride = width;
  op.p.copy.dst_stride = width;
  umg_graph_push (graph, &op);

  op = (UmgOp){ .type = UMG_OP_ADD };
  op.src[0] = buffers.x;
  op.src[1] = umg_push_const_copy (graph, model, vision->position_embedding, tokens, width,
                                   umg_vision_position_embedding (model, grid_h, grid_w));
  op.dst = buffers.x;
  op.p.add.n = op.p.add.n_b = (gint64) tokens * width;
  umg_graph_push (graph, &op);

  umg_push_layernorm (graph, buffers.x, tokens, width, width,
                      umg_ref_weight (vision->ln_pre_weight), umg_ref_weight (vision->ln_pre_bias),
                      tower->eps, buffers.x, width);
  for (gint l = 0; l < tower->layers; l++)
    umg_push_block (graph, tower, &tower->layer[l], &buffers, FALSE);

  /* embedding = ln_post(x[CLS]) · proj */
  cls = umg_graph_alloc (graph, width);
  embedding = umg_graph_alloc (graph, embed);
  umg_push_layernorm (graph, buffers.x, 1, width, width, umg_ref_weight (vision->ln_post_weight),
                      umg_ref_weight (vision->ln_post_bias), tower->eps, cls, width);
  umg_push_linear (graph, cls, 1, width, umg_ref_weight (vision->projection), UMG_REF_NONE, embed,
                   embedding, UMG_ACT_NONE, FALSE);
  umg_graph_add_output (graph, embedding, embed);

  if (spec->dense)
    {
      /* the normal path of the last block left its qkv in buffers.qkv */
      UmgRef dense = push_dense_branch (graph, model, spec, &buffers, grid_h, grid_w);
      umg_graph_add_output (graph, dense, (gsize) patches * embed);
      if (spec->box_capacity > 0)
        {
          UmgRef boxes = umg_graph_alloc (graph, 4 * (gsize) spec->box_capacity);
          UmgRef regions = umg_graph_alloc (graph, (gsize) spec->box_capacity * embed);
          umg_graph_add_input (graph, boxes, 4 * (gsize) spec->box_capacity);
          op = (UmgOp){ .type = UMG_OP_ROI_ALIGN };
          op.src[0] = dense;
          op.src[1] = boxes;
          op.dst = regions;
          op.p.roi.grid_h = grid_h;
          op.p.roi.grid_w = grid_w;
          op.p.roi.cols = embed;
          op.p.roi.n_boxes = spec->box_capacity;
          op.p.roi.output_size = UMGCLIP_ROI_OUTPUT_SIZE;
          op.p.roi.sampling = UMGCLIP_ROI_SAMPLING;
          umg_graph_push (graph, &op);
          op = (UmgOp){ .type = UMG_OP_L2NORM };
          op.src[0] = regions;
          op.dst = regions;
          op.p.l2.rows = spec->box_capacity;
          op.p.l2.cols = embed;
          umg_graph_push (graph, &op);
          umg_graph_add_output (graph, regions, (gsize) spec->box_capacity * embed);
        }
    }
  return g_steal_pointer (&graph);
}
