/* Vision graph: patches → transformer → CLS embedding; the last block also branches into the
 * "reduced" dense path (ClearCLIP / NACLIP): attention only, no residual, no MLP. */
#include "vit.h"

#include "frame.h"
#include "transformer.h"

#include <string.h>

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

/* The dense path of the last block for every image, from the qkv its normal path computed:
 * dense = ln_post(out_proj(A · V)[patches]) · proj. Returns the maps, [batch, patches, embed]. */
static UmgRef
push_dense_branch (UmgGraph *graph, const UmgModel *model, const UmgVisionSpec *spec,
                   const UmgBlockBuffers *buffers, gint grid_h, gint grid_w)
{
  const UmgVision *vision = &model->vision;
  const UmgTower *tower = &vision->tower;
  const UmgLayerWeights *last = &tower->layer[tower->layers - 1];
  const gint width = tower->width, tokens = buffers->seq_len, patches = grid_h * grid_w;
  const gint batch = buffers->n_seq;
  UmgRef mixed = umg_graph_alloc (graph, (gsize) batch * tokens * width);
  UmgRef projected = umg_graph_alloc (graph, (gsize) batch * tokens * width);
  UmgRef normed = umg_graph_alloc (graph, (gsize) batch * patches * width);
  UmgRef dense = umg_graph_alloc (graph, (gsize) batch * patches * model->embed_dim);
  UmgBlockBuffers branch = *buffers;
  UmgRef neighbourhood = UMG_REF_NONE;

  /* the branch writes its own attention output, leaving the normal path's intact */
  branch.attended = mixed;
  if (spec->dense_mode == UMGCLIP_DENSE_NACLIP)
    {
      UmgTensor *bias = g_new0 (UmgTensor, 1);
      bias->name = g_strdup ("naclip.neighbourhood");
      bias->dtype = UMG_DTYPE_F32;
      bias->n_dims = 2;
      bias->shape[0] = bias->shape[1] = tokens;
      bias->n_elements = (gsize) tokens * tokens;
      bias->data = bias->owned = neighbourhood_bias (grid_h, grid_w);
      neighbourhood = umg_graph_add_const (graph, bias);
    }
  for (gint b = 0; b < batch; b++)
    switch (spec->dense_mode)
      {
      case UMGCLIP_DENSE_NACLIP:
        umg_push_attention (graph, tower, &branch, b, UMG_LOGITS_KK, FALSE, neighbourhood, FALSE);
        break;
      case UMGCLIP_DENSE_CLEARCLIP:
        umg_push_attention (graph, tower, &branch, b, UMG_LOGITS_QQ, FALSE, UMG_REF_NONE, FALSE);
        break;
      case UMGCLIP_DENSE_SCLIP:
        umg_push_attention (graph, tower, &branch, b, UMG_LOGITS_QQ, FALSE, UMG_REF_NONE, FALSE);
        umg_push_attention (graph, tower, &branch, b, UMG_LOGITS_KK, FALSE, UMG_REF_NONE, TRUE);
        break;
      case UMGCLIP_DENSE_MASKCLIP:
      default:
        {
          UmgOp copy = { .type = UMG_OP_COPY };
          copy.src[0] = umg_ref_offset (buffers->qkv, ((gsize) b * tokens * 3 + 2) * width);
          copy.dst = umg_ref_offset (mixed, (gsize) b * tokens * width);
          copy.p.copy.rows = tokens;
          copy.p.copy.cols = width;
          copy.p.copy.src_stride = 3 * width;
          copy.p.copy.dst_stride = width;
          umg_graph_push (graph, &copy);
          break;
        }
      }
  umg_push_linear_blocks (graph, mixed, batch, tokens, width, umg_ref_weight (last->out_weight),
                          umg_ref_weight (last->out_bias), width, projected, UMG_ACT_NONE, FALSE);
  /* the patch rows of each image, without its class token */
  for (gint b = 0; b < batch; b++)
    umg_push_layernorm (graph, umg_ref_offset (projected, ((gsize) b * tokens + 1) * width),
                        patches, width, width, umg_ref_weight (vision->ln_post_weight),
                        umg_ref_weight (vision->ln_post_bias), tower->eps,
                        umg_ref_offset (normed, (gsize) b * patches * width), width);
  umg_push_linear_blocks (graph, normed, batch, patches, width, umg_ref_weight (vision->projection),
                          UMG_REF_NONE, model->embed_dim, dense, UMG_ACT_NONE, FALSE);
  return dense;
}

/* Image b's pixels from its frame and crop, as umgclip_frame_to_tensor does. */
static void
push_preprocess (UmgGraph *graph, const UmgModel *model, const UmgVisionSpec *spec,
                 const UmgRef *planes, UmgRef crop, UmgRef pixels)
{
  const UmgVision *vision = &model->vision;
  UmgOp op = { .type = UMG_OP_PREPROCESS };

  for (gint i = 0; i < 3; i++)
    op.src[i] = planes[i];
  op.src[3] = crop;
  op.dst = pixels;
  op.p.preprocess = (UmgPreprocessParams){
    .format = spec->frame_format,
    .width = spec->frame_width,
    .height = spec->frame_height,
    .out_w = spec->width,
    .out_h = spec->height,
    .kr = spec->frame_kr,
    .kb = spec->frame_kb,
    .full_range = spec->frame_full_range,
  };
  for (gint i = 0; i < 3; i++)
    {
      op.p.preprocess.strides[i] = spec->frame_strides[i];
      op.p.preprocess.mean[i] = vision->mean[i];
      op.p.preprocess.std[i] = vision->std[i];
    }
  umg_graph_push (graph, &op);
}

/* The network input of every image: tensors as given, or frames converted on the backend. */
static gboolean
push_inputs (UmgGraph *graph, const UmgModel *model, const UmgVisionSpec *spec, UmgRef pixels,
             GError **error)
{
  const gsize image = 3 * (gsize) spec->width * spec->height;
  UmgPreprocessParams layout = {
    .format = spec->frame_format,
    .width = spec->frame_width,
    .height = spec->frame_height,
  };
  gsize elements[3];
  guint n_planes;
  UmgRef crops;

  if (spec->frame_format < 0)
    {
      for (gint b = 0; b < spec->batch; b++)
        umg_graph_add_input (graph, umg_ref_offset (pixels, b * image), image);
      return TRUE;
    }
  memcpy (layout.strides, spec->frame_strides, sizeof layout.strides);
  n_planes = umg_preprocess_plane_elements (&layout, elements);
  if (n_planes == 0 || (spec->n_frames != 1 && spec->n_frames != spec->batch))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "bad frame layout: format %d, %d×%d, strides %d, %d, %d, %d frames for %d "
                   "images",
                   spec->frame_format, spec->frame_width, spec->frame_height,
                   spec->frame_strides[0], spec->frame_strides[1], spec->frame_strides[2],
                   spec->n_frames, spec->batch);
      return FALSE;
    }
  {
    g_autofree UmgRef *planes = g_new0 (UmgRef, 3 * (gsize) spec->n_frames);
    gsize bytes[3];
    umg_frame_plane_bytes (spec->frame_format, spec->frame_width, spec->frame_height,
                           spec->frame_strides, bytes);
    for (gint f = 0; f < spec->n_frames; f++)
      for (guint i = 0; i < 3; i++)
        planes[3 * f + i] = i < n_planes ? umg_graph_add_direct_input (graph, bytes[i])
                                         : umg_ref_arena (0); /* unused by the format */
    crops = umg_graph_alloc (graph, 4 * (gsize) spec->batch);
    umg_graph_add_input (graph, crops, 4 * (gsize) spec->batch);
    for (gint b = 0; b < spec->batch; b++)
      push_preprocess (graph, model, spec, planes + 3 * (spec->n_frames == 1 ? 0 : b),
                       umg_ref_offset (crops, 4 * (gsize) b), umg_ref_offset (pixels, b * image));
  }
  return TRUE;
}

UmgGraph *
umg_vision_graph_new (const UmgModel *model, const UmgVisionSpec *spec, GError **error)
{
  const UmgVision *vision = &model->vision;
  const UmgTower *tower = &vision->tower;
  const gint p = vision->patch_size, width = tower->width;
  const gint grid_h = spec->height / p, grid_w = spec->width / p;
  const gint patches = grid_h * grid_w, tokens = 1 + patches;
  const gint embed = model->embed_dim, batch = spec->batch;
  g_autoptr (UmgGraph) graph = NULL;
  UmgBlockBuffers buffers;
  UmgRef pixels, columns, cls, embeddings, dense;
  UmgOp op;

  if (grid_h < 1 || grid_w < 1)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "image %dx%d is smaller than one %dx%d patch", spec->width, spec->height, p, p);
      return NULL;
    }
  if (batch < 1)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "a pass of %d images", batch);
      return NULL;
    }
  if (spec->box_capacity > 0 && !spec->dense)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "region embeddings need the dense branch");
      return NULL;
    }

  graph = umg_graph_new ();
  pixels = umg_graph_alloc (graph, (gsize) batch * 3 * spec->width * spec->height);
  if (!push_inputs (graph, model, spec, pixels, error))
    return NULL;
  columns = umg_graph_alloc (graph, (gsize) batch * patches * 3 * p * p);
  umg_block_buffers_alloc (graph, tower, batch, tokens, TRUE, &buffers);

  /* patch embedding: a stride-p convolution as im2col + matrix product, into rows 1.. of each
   * image's tokens */
  for (gint b = 0; b < batch; b++)
    {
      op = (UmgOp){ .type = UMG_OP_IM2COL };
      op.src[0] = umg_ref_offset (pixels, (gsize) b * 3 * spec->width * spec->height);
      op.dst = umg_ref_offset (columns, (gsize) b * patches * 3 * p * p);
      op.p.im2col = (UmgIm2colParams){ 3, spec->height, spec->width, p, grid_h, grid_w };
      umg_graph_push (graph, &op);
    }
  op = (UmgOp){ .type = UMG_OP_MATMUL };
  op.src[0] = columns;
  op.src[1] = umg_ref_weight (vision->patch_weight);
  op.src[2] = UMG_REF_NONE;
  op.dst = umg_ref_offset (buffers.x, width);
  op.p.mm = (UmgMatmulParams){
    .m = patches,
    .n = width,
    .k = 3 * p * p,
    .batch = batch,
    .lda = 3 * p * p,
    .ldb = 3 * p * p,
    .ldc = width,
    .stride_a = (gint64) patches * 3 * p * p,
    .stride_b = 0,
    .stride_c = (gint64) tokens * width,
    .trans_b = TRUE,
    .alpha = 1.0f,
  };
  umg_graph_push (graph, &op);

  for (gint b = 0; b < batch; b++)
    {
      op = (UmgOp){ .type = UMG_OP_COPY };
      op.src[0] = umg_ref_weight (vision->class_embedding);
      op.dst = umg_ref_offset (buffers.x, (gsize) b * tokens * width);
      op.p.copy = (UmgCopyParams){ 1, width, width, width };
      umg_graph_push (graph, &op);
    }

  op = (UmgOp){ .type = UMG_OP_ADD };
  op.src[0] = buffers.x;
  op.src[1] = umg_push_const_copy (graph, model, vision->position_embedding, tokens, width,
                                   umg_vision_position_embedding (model, grid_h, grid_w));
  op.dst = buffers.x;
  op.p.add.n = (gint64) batch * tokens * width;
  op.p.add.n_b = (gint64) tokens * width;
  umg_graph_push (graph, &op);

  umg_push_layernorm (graph, buffers.x, batch * tokens, width, width,
                      umg_ref_weight (vision->ln_pre_weight), umg_ref_weight (vision->ln_pre_bias),
                      tower->eps, buffers.x, width);
  /* only the class token leaves the last block (the dense branch takes the block's qkv, made
   * for every token, and runs its own attention) */
  for (gint l = 0; l < tower->layers; l++)
    if (l == tower->layers - 1)
      umg_push_block_first_token (graph, tower, &tower->layer[l], &buffers);
    else
      umg_push_block (graph, tower, &tower->layer[l], &buffers, FALSE);

  /* embedding = ln_post(x[CLS]) · proj, the class token being each image's first row */
  cls = umg_graph_alloc (graph, (gsize) batch * width);
  embeddings = umg_graph_alloc (graph, (gsize) batch * embed);
  umg_push_layernorm (graph, buffers.x, batch, width, tokens * width,
                      umg_ref_weight (vision->ln_post_weight),
                      umg_ref_weight (vision->ln_post_bias), tower->eps, cls, width);
  umg_push_linear_blocks (graph, cls, batch, 1, width, umg_ref_weight (vision->projection),
                          UMG_REF_NONE, embed, embeddings, UMG_ACT_NONE, FALSE);
  for (gint b = 0; b < batch; b++)
    umg_graph_add_output (graph, umg_ref_offset (embeddings, (gsize) b * embed), embed);
  if (!spec->dense)
    return g_steal_pointer (&graph);

  /* the normal path of the last block left its qkv in buffers.qkv */
  dense = push_dense_branch (graph, model, spec, &buffers, grid_h, grid_w);
  for (gint b = 0; b < batch; b++)
    umg_graph_add_output (graph, umg_ref_offset (dense, (gsize) b * patches * embed),
                          (gsize) patches * embed);
  if (spec->box_capacity > 0)
    {
      const gsize slots = (gsize) batch * spec->box_capacity;
      UmgRef boxes = umg_graph_alloc (graph, 4 * slots);
      UmgRef regions = umg_graph_alloc (graph, slots * embed);
      umg_graph_add_input (graph, boxes, 4 * slots);
      for (gint b = 0; b < batch; b++)
        {
          op = (UmgOp){ .type = UMG_OP_ROI_ALIGN };
          op.src[0] = umg_ref_offset (dense, (gsize) b * patches * embed);
          op.src[1] = umg_ref_offset (boxes, (gsize) b * spec->box_capacity * 4);
          op.dst = umg_ref_offset (regions, (gsize) b * spec->box_capacity * embed);
          op.p.roi = (UmgRoiAlignParams){
            grid_h,
            grid_w,
            embed,
            spec->box_capacity,
            UMGCLIP_ROI_OUTPUT_SIZE,
            UMGCLIP_ROI_SAMPLING,
          };
          umg_graph_push (graph, &op);
        }
      op = (UmgOp){ .type = UMG_OP_L2NORM };
      op.src[0] = regions;
      op.dst = regions;
      op.p.l2 = (UmgL2normParams){ (gint) slots, embed };
      umg_graph_push (graph, &op);
      for (gint b = 0; b < batch; b++)
        umg_graph_add_output (graph,
                              umg_ref_offset (regions, (gsize) b * spec->box_capacity * embed),
                              (gsize) spec->box_capacity * embed);
    }
  return g_steal_pointer (&graph);
}
