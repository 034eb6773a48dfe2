/* Text graph: several sequences share one pass; each attends causally within itself. */
#include "text.h"

#include "transformer.h"

UmgGraph *
umg_text_graph_new (const UmgModel *model, gint n_seq, gint length)
{
  const UmgText *text = &model->text;
  const UmgTower *tower = &text->tower;
  const gint width = tower->width;
  const gsize tokens = (gsize) n_seq * length;
  UmgGraph *graph = umg_graph_new ();
  UmgBlockBuffers buffers;
  UmgRef ids, ends, pooled, normed, out;
  UmgOp op;

  ids = umg_graph_alloc (graph, tokens);
  umg_graph_add_input (graph, ids, tokens);
  ends = umg_graph_alloc (graph, n_seq);
  umg_graph_add_input (graph, ends, n_seq);
  umg_block_buffers_alloc (graph, tower, n_seq, length, FALSE, &buffers);

  op = (UmgOp){ .type = UMG_OP_GATHER };
  op.src[0] = umg_ref_weight (text->token_embedding);
  op.src[1] = ids;
  op.dst = buffers.x;
  op.p.gather.rows = tokens;
  op.p.gather.cols = width;
  op.p.gather.src_stride = width;
  umg_graph_push (graph, &op);

  op = (UmgOp){ .type = UMG_OP_ADD };
  op.src[0] = buffers.x;
  op.src[1] = umg_push_const_copy (graph, model, text->position_embedding, length, width, NULL);
  op.dst = buffers.x;
  op.p.add.n = (gint64) tokens * width;
  op.p.add.n_b = (gint64) length * width;
  umg_graph_push (graph, &op);

  for (gint l = 0; l < tower->layers; l++)
    umg_push_block (graph, tower, &tower->layer[l], &buffers, TRUE);

  /* the causal mask makes every later token irrelevant to the end token: pool first, then
   * normalise only the pooled rows */
  pooled = umg_graph_alloc (graph, (gsize) n_seq * width);
  op = (UmgOp){ .type = UMG_OP_GATHER };
  op.src[0] = buffers.x;
  op.src[1] = ends;
  op.dst = pooled;
  op.p.gather.rows = n_seq;
  op.p.gather.cols = width;
  op.p.gather.src_stride = width;
  umg_graph_push (graph, &op);

  normed = umg_graph_alloc (graph, (gsize) n_seq * width);
  out = umg_graph_alloc (graph, (gsize) n_seq * model->embed_dim);
  umg_push_layernorm (graph, pooled, n_seq, width, width, umg_ref_weight (text->ln_final_weight),
                      umg_ref_weight (text->ln_final_bias), tower->eps, normed, width);
  umg_push_linear (graph, normed, n_seq, width, umg_ref_weight (text->projection), UMG_REF_NONE,
                   model->embed_dim, out, UMG_ACT_NONE, FALSE);
  umg_graph_add_output (graph, out, (gsize) n_seq * model->embed_dim);
  return graph;
}
