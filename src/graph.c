/* The op graph container: arena planning by explicit allocation, constants, inputs, outputs. */
#include "graph.h"

#include "frame.h"
#include "umgclip.h"

static const gchar *const op_names[UMG_N_OPS] = {
  [UMG_OP_MATMUL] = "matmul",   [UMG_OP_LAYERNORM] = "layernorm",
  [UMG_OP_SOFTMAX] = "softmax", [UMG_OP_GATHER] = "gather",
  [UMG_OP_IM2COL] = "im2col",   [UMG_OP_ADD] = "add",
  [UMG_OP_COPY] = "copy",       [UMG_OP_ROI_ALIGN] = "roi_align",
  [UMG_OP_L2NORM] = "l2norm",   [UMG_OP_PREPROCESS] = "preprocess",
};

const gchar *
umg_op_name (UmgOpType type)
{
  return type < UMG_N_OPS ? op_names[type] : "unknown";
}

gsize
umg_dtype_size (UmgDtype dtype)
{
  return dtype == UMG_DTYPE_F16 ? 2 : 4;
}

gfloat
umg_half_to_float (guint16 half)
{
  guint32 sign = (guint32) (half & 0x8000) << 16;
  guint32 exponent = (half >> 10) & 0x1f;
  guint32 mantissa = half & 0x3ff;
  union
  {
    guint32 u;
    gfloat f;
  } out;

  if (exponent == 0x1f)
    out.u = sign | 0x7f800000 | (mantissa << 13);
  else if (exponent != 0)
    out.u = sign | ((exponent + 112) << 23) | (mantissa << 13);
  else if (mantissa == 0)
    out.u = sign;
  else
    {
      /* subnormal half: value = mantissa * 2^-24, exact in single precision */
      out.f = (gfloat) mantissa * (1.0f / 16777216.0f);
      out.u |= sign;
    }
  return out.f;
}

guint16
umg_float_to_half (gfloat value)
{
  union
  {
    gfloat f;
    guint32 u;
  } in = { value };
  guint32 sign = (in.u >> 16) & 0x8000;
  guint32 abs_bits = in.u & 0x7fffffff;

  if (abs_bits >= 0x7f800000) /* inf or nan */
    return sign | 0x7c00 | (abs_bits > 0x7f800000 ? 0x200 : 0);
  if (abs_bits >= 0x477ff000) /* rounds to >= 65520: overflow */
    return sign | 0x7c00;
  if (abs_bits < 0x38800000)
    {
      /* subnormal or zero half: round value * 2^24 to nearest even integer */
      union
      {
        guint32 u;
        gfloat f;
      } a = { abs_bits };
      gfloat scaled = a.f * 16777216.0f;
      guint32 integer = (guint32) scaled;
      gfloat rest = scaled - (gfloat) integer;
      if (rest > 0.5f || (rest == 0.5f && (integer & 1)))
        integer++;
      return sign | integer;
    }
  {
    guint32 mantissa = abs_bits & 0x7fffff;
    guint32 exponent = (abs_bits >> 23) - 112;
    guint32 half = (exponent << 10) | (mantissa >> 13);
    guint32 rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1)))
      half++; /* carries into the exponent correctly */
    return sign | half;
  }
}

void
umg_tensor_clear (UmgTensor *tensor)
{
  g_clear_pointer (&tensor->name, g_free);
  g_clear_pointer (&tensor->owned, g_free);
  tensor->data = NULL;
}

static void
tensor_free (gpointer data)
{
  UmgTensor *tensor = data;
  umg_tensor_clear (tensor);
  g_free (tensor);
}

gboolean
umg_ref_is_none (UmgRef ref)
{
  return ref.storage == UMG_STORAGE_ARENA && ref.index == G_MAXUINT;
}

gsize
umg_strided_extent (gint64 batch, gint64 batch_stride, gint64 rows, gint64 stride, gint64 cols)
{
  if (batch <= 0 || rows <= 0 || cols <= 0)
    return 0;
  return (gsize) ((batch - 1) * batch_stride + (rows - 1) * stride + cols);
}

UmgRef
umg_ref_arena (gsize offset)
{
  return (UmgRef){ UMG_STORAGE_ARENA, 0, offset };
}

UmgRef
umg_ref_weight (guint index)
{
  return (UmgRef){ UMG_STORAGE_WEIGHT, index, 0 };
}

UmgRef
umg_ref_offset (UmgRef ref, gsize elements)
{
  ref.offset += elements;
  return ref;
}

UmgGraph *
umg_graph_new (void)
{
  UmgGraph *graph = g_new0 (UmgGraph, 1);
  graph->ops = g_array_new (FALSE, TRUE, sizeof (UmgOp));
  graph->consts = g_ptr_array_new_with_free_func (tensor_free);
  graph->inputs = g_array_new (FALSE, TRUE, sizeof (UmgSlot));
  graph->outputs = g_array_new (FALSE, TRUE, sizeof (UmgSlot));
  return graph;
}

void
umg_graph_free (UmgGraph *graph)
{
  if (graph == NULL)
    return;
  g_array_unref (graph->ops);
  g_ptr_array_unref (graph->consts);
  g_array_unref (graph->inputs);
  g_array_unref (graph->outputs);
  g_free (graph);
}

UmgRef
umg_graph_alloc (UmgGraph *graph, gsize n_elements)
{
  /* 16 elements = 64 bytes keeps every buffer aligned for vector loads and for
   * minStorageBufferOffsetAlignment on common devices. */
  gsize offset = graph->arena_elements;
  graph->arena_elements += (n_elements + 15) & ~(gsize) 15;
  return umg_ref_arena (offset);
}

UmgRef
umg_graph_add_const (UmgGraph *graph, UmgTensor *tensor)
{
  g_ptr_array_add (graph->consts, tensor);
  return (UmgRef){ UMG_STORAGE_CONST, graph->consts->len - 1, 0 };
}

static guint
add_slot (GArray *slots, UmgRef ref, gsize n_elements)
{
  UmgSlot slot = { .offset = ref.offset, .n_elements = n_elements };
  g_return_val_if_fail (ref.storage == UMG_STORAGE_ARENA, 0);
  g_array_append_val (slots, slot);
  return slots->len - 1;
}

guint
umg_graph_add_input (UmgGraph *graph, UmgRef ref, gsize n_elements)
{
  return add_slot (graph->inputs, ref, n_elements);
}

guint
umg_graph_add_output (UmgGraph *graph, UmgRef ref, gsize n_elements)
{
  return add_slot (graph->outputs, ref, n_elements);
}

void
umg_graph_push (UmgGraph *graph, const UmgOp *op)
{
  g_array_append_vals (graph->ops, op, 1);
}

UmgRef
umg_graph_add_direct_input (UmgGraph *graph, gsize n_bytes)
{
  UmgSlot slot = { .n_elements = (n_bytes + 3) / 4, .n_bytes = n_bytes, .direct = TRUE };
  g_array_append_val (graph->inputs, slot);
  return (UmgRef){ UMG_STORAGE_INPUT, graph->inputs->len - 1, 0 };
}

guint
umg_preprocess_plane_elements (const UmgPreprocessParams *pre, gsize elements[3])
{
  gsize bytes[3];
  guint n_planes
      = pre->width >= 1 && pre->height >= 1
            ? umg_frame_plane_bytes (pre->format, pre->width, pre->height, pre->strides, bytes)
            : 0;
  for (guint i = 0; i < 3; i++)
    elements[i] = i < n_planes ? (bytes[i] + 3) / 4 : 0;
  return n_planes;
}

/* ---- the op contract ---- */

typedef struct
{
  const UmgGraph *graph;
  const UmgTensor *weights;
  guint n_weights;
  const UmgOp *op;
  guint position;
} OpCheck;

static gboolean op_error (const OpCheck *check, GError **error, const gchar *format, ...)
    G_GNUC_PRINTF (3, 4);

static gboolean
op_error (const OpCheck *check, GError **error, const gchar *format, ...)
{
  g_autofree gchar *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "graph op %u (%s): %s",
               check->position, umg_op_name (check->op->type), message);
  return FALSE;
}

static const gchar *
storage_name (UmgStorage storage)
{
  switch (storage)
    {
    case UMG_STORAGE_ARENA:
      return "arena";
    case UMG_STORAGE_WEIGHT:
      return "weight";
    case UMG_STORAGE_CONST:
      return "const";
    case UMG_STORAGE_INPUT:
      return "input";
    }
  return "unknown storage";
}

/* How an op may use a ref. */
typedef enum
{
  REF_READ,        /* any storage, F32 (or I32) */
  REF_READ_MATRIX, /* any storage, may be an F16 matrix (matmul B, gather table) */
  REF_WRITE,       /* arena only */
} RefUse;

/* extent: elements read or written from ref.offset on; 0 when the op touches nothing there. */
static gboolean
check_ref (const OpCheck *check, UmgRef ref, gsize extent, const gchar *role, RefUse use,
           GError **error)
{
  const UmgTensor *tensor = NULL;
  gsize available;

  if (umg_ref_is_none (ref))
    return op_error (check, error, "%s is required but not set", role);
  switch (ref.storage)
    {
    case UMG_STORAGE_ARENA:
      available = check->graph->arena_elements;
      break;
    case UMG_STORAGE_WEIGHT:
      if (ref.index >= check->n_weights)
        return op_error (check, error, "%s refers to weight %u but the backend holds %u weights",
                         role, ref.index, check->n_weights);
      tensor = &check->weights[ref.index];
      available = tensor->n_elements;
      break;
    case UMG_STORAGE_CONST:
      if (ref.index >= check->graph->consts->len)
        return op_error (check, error, "%s refers to const %u but the graph has %u constants", role,
                         ref.index, check->graph->consts->len);
      tensor = g_ptr_array_index (check->graph->consts, ref.index);
      available = tensor->n_elements;
      break;
    case UMG_STORAGE_INPUT:
      if (ref.index >= check->graph->inputs->len
          || !g_array_index (check->graph->inputs, UmgSlot, ref.index).direct)
        return op_error (check, error, "%s refers to input %u, which is not a direct input", role,
                         ref.index);
      available = g_array_index (check->graph->inputs, UmgSlot, ref.index).n_elements;
      break;
    default:
      return op_error (check, error, "%s has unknown storage %d", role, (gint) ref.storage);
    }
  if (use == REF_WRITE && ref.storage != UMG_STORAGE_ARENA)
    return op_error (check, error, "%s must be in the arena, not in %s %u", role,
                     storage_name (ref.storage), ref.index);
  if (tensor != NULL && tensor->dtype == UMG_DTYPE_F16 && tensor->n_dims >= 2
      && use != REF_READ_MATRIX)
    return op_error (check, error,
                     "%s is the F16 matrix '%s'; only matmul B and gather tables may be", role,
                     tensor->name ? tensor->name : "?");
  if (extent > 0 && (ref.offset > available || extent > available - ref.offset))
    return op_error (check, error,
                     "%s spans %" G_GSIZE_FORMAT " elements at offset %" G_GSIZE_FORMAT
                     " of %s %u%s%s%s, which holds %" G_GSIZE_FORMAT,
                     role, extent, ref.offset, storage_name (ref.storage), ref.index,
                     tensor && tensor->name ? " ('" : "",
                     tensor && tensor->name ? tensor->name : "", tensor && tensor->name ? "')" : "",
                     available);
  return TRUE;
}

static gboolean
check_matmul (const OpCheck *check, GError **error)
{
  const UmgMatmulParams *mm = &check->op->p.mm;
  gint b_cols = mm->trans_b ? mm->k : mm->n;
  gint b_rows = mm->trans_b ? mm->n : mm->k;

  if (mm->m < 1 || mm->n < 1 || mm->k < 1 || mm->batch < 1)
    return op_error (check, error, "m %d, n %d, k %d and batch %d must all be >= 1", mm->m, mm->n,
                     mm->k, mm->batch);
  if (mm->lda < mm->k || mm->ldb < b_cols || mm->ldc < mm->n)
    return op_error (check, error,
                     "leading dimensions lda %d, ldb %d, ldc %d are smaller than the rows "
                     "they hold (k %d, %s %d, n %d)",
                     mm->lda, mm->ldb, mm->ldc, mm->k, mm->trans_b ? "k" : "n", b_cols, mm->n);
  if (mm->stride_a < 0 || mm->stride_b < 0 || mm->stride_c < 0)
    return op_error (check, error,
                     "negative batch stride (a %" G_GINT64_FORMAT ", b %" G_GINT64_FORMAT
                     ", c %" G_GINT64_FORMAT ")",
                     mm->stride_a, mm->stride_b, mm->stride_c);
  if (mm->act != UMG_ACT_NONE && mm->act != UMG_ACT_QUICK_GELU && mm->act != UMG_ACT_GELU)
    return op_error (check, error, "unknown activation %d", (gint) mm->act);
  return check_ref (check, check->op->src[0],
                    umg_strided_extent (mm->batch, mm->stride_a, mm->m, mm->lda, mm->k), "A",
                    REF_READ, error)
         && check_ref (check, check->op->src[1],
                       umg_strided_extent (mm->batch, mm->stride_b, b_rows, mm->ldb, b_cols), "B",
                       REF_READ_MATRIX, error)
         && (umg_ref_is_none (check->op->src[2])
             || check_ref (check, check->op->src[2], mm->n, "bias", REF_READ, error))
         && check_ref (check, check->op->dst,
                       umg_strided_extent (mm->batch, mm->stride_c, mm->m, mm->ldc, mm->n), "C",
                       REF_WRITE, error);
}

static gboolean
check_rows (const OpCheck *check, gint rows, gint cols, gint src_stride, gint dst_stride,
            GError **error)
{
  if (rows < 0 || cols < 1 || src_stride < cols || dst_stride < cols)
    return op_error (check, error, "bad shape: rows %d, cols %d, src_stride %d, dst_stride %d",
                     rows, cols, src_stride, dst_stride);
  return TRUE;
}

static gboolean
check_op (const OpCheck *check, GError **error)
{
  const UmgOp *op = check->op;

  switch (op->type)
    {
    case UMG_OP_MATMUL:
      return check_matmul (check, error);
    case UMG_OP_LAYERNORM:
      {
        const UmgLayernormParams *ln = &op->p.ln;
        return check_rows (check, ln->rows, ln->cols, ln->src_stride, ln->dst_stride, error)
               && check_ref (check, op->src[0],
                             umg_strided_extent (1, 0, ln->rows, ln->src_stride, ln->cols), "x",
                             REF_READ, error)
               && check_ref (check, op->src[1], ln->cols, "gamma", REF_READ, error)
               && check_ref (check, op->src[2], ln->cols, "beta", REF_READ, error)
               && check_ref (check, op->dst,
                             umg_strided_extent (1, 0, ln->rows, ln->dst_stride, ln->cols), "dst",
                             REF_WRITE, error);
      }
    case UMG_OP_SOFTMAX:
      {
        const UmgSoftmaxParams *sm = &op->p.softmax;
        if (sm->batch < 0 || sm->rows < 0 || sm->cols < 1)
          return op_error (check, error, "bad shape: batch %d, rows %d, cols %d", sm->batch,
                           sm->rows, sm->cols);
        if ((gint64) sm->batch * sm->rows > G_MAXUINT32)
          return op_error (check, error, "%d × %d rows are too many", sm->batch, sm->rows);
        return check_ref (check, op->dst, (gsize) sm->batch * sm->rows * sm->cols, "x", REF_WRITE,
                          error)
               && (umg_ref_is_none (op->src[0])
                   || check_ref (check, op->src[0], (gsize) sm->rows * sm->cols, "bias", REF_READ,
                                 error));
      }
    case UMG_OP_GATHER:
      {
        const UmgGatherParams *g = &op->p.gather;
        if (g->rows < 0 || g->cols < 1 || g->src_stride < g->cols)
          return op_error (check, error, "bad shape: rows %d, cols %d, src_stride %d", g->rows,
                           g->cols, g->src_stride);
        if (op->src[1].storage != UMG_STORAGE_ARENA)
          {
            const UmgTensor *tensor
                = op->src[1].storage == UMG_STORAGE_CONST
                          && op->src[1].index < check->graph->consts->len
                      ? g_ptr_array_index (check->graph->consts, op->src[1].index)
                      : NULL;
            if (tensor == NULL || tensor->dtype != UMG_DTYPE_I32)
              return op_error (check, error, "ids must be i32, in the arena or an I32 const");
          }
        /* row ids are only known at run time; there they are checked against the table */
        return check_ref (check, op->src[0], g->cols, "table", REF_READ_MATRIX, error)
               && check_ref (check, op->src[1], g->rows, "ids", REF_READ, error)
               && check_ref (check, op->dst, (gsize) g->rows * g->cols, "dst", REF_WRITE, error);
      }
    case UMG_OP_IM2COL:
      {
        const UmgIm2colParams *ic = &op->p.im2col;
        if (ic->channels < 1 || ic->patch < 1 || ic->grid_h < 0 || ic->grid_w < 0
            || (gint64) ic->grid_h * ic->patch > ic->height
            || (gint64) ic->grid_w * ic->patch > ic->width)
          return op_error (check, error,
                           "a %d × %d grid of %d-pixel patches of %d channels does not fit a %d × "
                           "%d image",
                           ic->grid_h, ic->grid_w, ic->patch, ic->channels, ic->height, ic->width);
        return check_ref (check, op->src[0], (gsize) ic->channels * ic->height * ic->width, "image",
                          REF_READ, error)
               && check_ref (check, op->dst,
                             (gsize) ic->grid_h * ic->grid_w * ic->channels * ic->patch * ic->patch,
                             "dst", REF_WRITE, error);
      }
    case UMG_OP_ADD:
      if (op->p.add.n < 0 || op->p.add.n_b < 1 || op->p.add.n > G_MAXUINT32
          || op->p.add.n_b > G_MAXUINT32)
        return op_error (check, error, "bad sizes: n %" G_GINT64_FORMAT ", n_b %" G_GINT64_FORMAT,
                         op->p.add.n, op->p.add.n_b);
      return check_ref (check, op->src[0], op->p.add.n, "a", REF_READ, error)
             && check_ref (check, op->src[1], op->p.add.n > 0 ? op->p.add.n_b : 0, "b", REF_READ,
                           error)
             && check_ref (check, op->dst, op->p.add.n, "dst", REF_WRITE, error);
    case UMG_OP_COPY:
      {
        const UmgCopyParams *cp = &op->p.copy;
        return check_rows (check, cp->rows, cp->cols, cp->src_stride, cp->dst_stride, error)
               && check_ref (check, op->src[0],
                             umg_strided_extent (1, 0, cp->rows, cp->src_stride, cp->cols), "src",
                             REF_READ, error)
               && check_ref (check, op->dst,
                             umg_strided_extent (1, 0, cp->rows, cp->dst_stride, cp->cols), "dst",
                             REF_WRITE, error);
      }
    case UMG_OP_ROI_ALIGN:
      {
        const UmgRoiAlignParams *roi = &op->p.roi;
        if (roi->grid_h < 1 || roi->grid_w < 1 || roi->cols < 1 || roi->n_boxes < 0
            || roi->output_size < 1 || roi->sampling < 1)
          return op_error (
              check, error, "bad shape: map %d × %d × %d, %d boxes, output_size %d, sampling %d",
              roi->grid_h, roi->grid_w, roi->cols, roi->n_boxes, roi->output_size, roi->sampling);
        return check_ref (check, op->src[0], (gsize) roi->grid_h * roi->grid_w * roi->cols, "map",
                          REF_READ, error)
               && check_ref (check, op->src[1], (gsize) roi->n_boxes * 4, "boxes", REF_READ, error)
               && check_ref (check, op->dst, (gsize) roi->n_boxes * roi->cols, "dst", REF_WRITE,
                             error);
      }
    case UMG_OP_L2NORM:
      if (op->p.l2.rows < 0 || op->p.l2.cols < 1)
        return op_error (check, error, "bad shape: rows %d, cols %d", op->p.l2.rows, op->p.l2.cols);
      return check_ref (check, op->src[0], (gsize) op->p.l2.rows * op->p.l2.cols, "x", REF_READ,
                        error)
             && check_ref (check, op->dst, (gsize) op->p.l2.rows * op->p.l2.cols, "dst", REF_WRITE,
                           error);
    case UMG_OP_PREPROCESS:
      {
        const UmgPreprocessParams *pre = &op->p.preprocess;
        static const gchar *const plane_roles[3] = { "plane 0", "plane 1", "plane 2" };
        gsize elements[3];
        guint n_planes = umg_preprocess_plane_elements (pre, elements);
        if (n_planes == 0 || pre->out_w < 1 || pre->out_h < 1
            || (gint64) pre->out_w * pre->out_h > G_MAXINT32 / 3)
          return op_error (check, error,
                           "bad frame: format %d, %d × %d (strides %d, %d, %d) to %d × %d",
                           pre->format, pre->width, pre->height, pre->strides[0], pre->strides[1],
                           pre->strides[2], pre->out_w, pre->out_h);
        for (guint i = 0; i < n_planes; i++)
          if (!check_ref (check, op->src[i], elements[i], plane_roles[i], REF_READ, error))
            return FALSE;
        return check_ref (check, op->src[3], 4, "crop", REF_READ, error)
               && check_ref (check, op->dst, 3 * (gsize) pre->out_w * pre->out_h, "dst", REF_WRITE,
                             error);
      }
    case UMG_N_OPS:
      break;
    }
  return op_error (check, error, "unknown op type %d", (gint) op->type);
}

static gboolean
check_slots (const UmgGraph *graph, GArray *slots, const gchar *kind, GError **error)
{
  for (guint i = 0; i < slots->len; i++)
    {
      const UmgSlot *slot = &g_array_index (slots, UmgSlot, i);
      if (!slot->direct
          && (slot->offset > graph->arena_elements
              || slot->n_elements > graph->arena_elements - slot->offset))
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                       "graph %s %u (%" G_GSIZE_FORMAT " elements at %" G_GSIZE_FORMAT
                       ") lies outside the arena of %" G_GSIZE_FORMAT " elements",
                       kind, i, slot->n_elements, slot->offset, graph->arena_elements);
          return FALSE;
        }
    }
  return TRUE;
}

gboolean
umg_graph_validate (const UmgGraph *graph, const UmgTensor *weights, guint n_weights,
                    GError **error)
{
  for (guint i = 0; i < graph->ops->len; i++)
    {
      OpCheck check = { graph, weights, n_weights, &g_array_index (graph->ops, UmgOp, i), i };
      if (!check_op (&check, error))
        return FALSE;
    }
  for (guint i = 0; i < graph->outputs->len; i++)
    if (g_array_index (graph->outputs, UmgSlot, i).direct)
      {
        g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                     "graph output %u is a direct input", i);
        return FALSE;
      }
  return check_slots (graph, graph->inputs, "input", error)
         && check_slots (graph, graph->outputs, "output", error);
}
