/* The op graph container: arena planning by explicit allocation, constants, inputs, outputs. */
#include "graph.h"

static const gchar *const op_names[UMG_N_OPS] = {
  [UMG_OP_MATMUL] = "matmul",
  [UMG_OP_LAYERNORM] = "layernorm",
  [UMG_OP_SOFTMAX] = "softmax",
  [UMG_OP_GATHER] = "gather",
  [UMG_OP_IM2COL] = "im2col",
  [UMG_OP_ADD] = "add",
  [UMG_OP_COPY] = "copy",
  [UMG_OP_ROI_ALIGN] = "roi_align",
  [UMG_OP_L2NORM] = "l2norm",
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

UmgRef
umg_ref_arena (gsize offset)
{
  return (UmgRef) { UMG_STORAGE_ARENA, 0, offset };
}

UmgRef
umg_ref_weight (guint index)
{
  return (UmgRef) { UMG_STORAGE_WEIGHT, index, 0 };
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
  return (UmgRef) { UMG_STORAGE_CONST, graph->consts->len - 1, 0 };
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
