/* The op graph container: arena planning by explicit allocation, constants, inputs, outputs. */
#include "graph.h"

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
  UmgSlot slot = { ref.offset, n_elements };
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
