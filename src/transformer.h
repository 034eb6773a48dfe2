/* Ops shared by the vision and text graphs: linear layers, layer norms, attention and the
 * pre-LN transformer block, expressed as graph ops over planned arena buffers. */
#pragma once

#include "graph.h"
#include "model.h"

G_BEGIN_DECLS

/* Arena buffers one tower reuses in every layer. */
typedef struct
{
  gint n_seq, seq_len; /* sequences of seq_len tokens, stored one after the other */
  /* Each sequence's rows go through products of their own (a batched product), so that a
   * sequence's result never depends on its neighbours: a batched vision pass then equals
   * single passes bit for bit on any BLAS, whose kernels change with the row count. FALSE
   * stacks every row into one product (text: many short sequences). */
  gboolean separate_sequences;
  UmgRef x;        /* [n_seq seq_len, width] residual stream */
  UmgRef normed;   /* [n_seq seq_len, width] layer-norm output */
  UmgRef qkv;      /* [n_seq seq_len, 3 width] */
  UmgRef scores;   /* [n_seq, heads, seq_len, seq_len] */
  UmgRef attended; /* [n_seq seq_len, width] heads concatenated, before out_proj */
  UmgRef hidden;   /* [n_seq seq_len, mlp] */
} UmgBlockBuffers;

void umg_block_buffers_alloc (UmgGraph *graph, const UmgTower *tower, gint n_seq, gint seq_len,
                              gboolean separate_sequences, UmgBlockBuffers *buffers);

/* out[rows, n] (+)= act(x[rows, k] · weightᵀ + bias); weight [n, k]. */
void umg_push_linear (UmgGraph *graph, UmgRef x, gint rows, gint k, UmgRef weight, UmgRef bias,
                      gint n, UmgRef out, UmgActivation act, gboolean accumulate);
/* The same for n_seq blocks of rows each, stored one after the other, as one batched product
 * whose blocks are computed apart (one GEMM each on the CPU, one dispatch on Vulkan). */
void umg_push_linear_blocks (UmgGraph *graph, UmgRef x, gint n_seq, gint rows, gint k,
                             UmgRef weight, UmgRef bias, gint n, UmgRef out, UmgActivation act,
                             gboolean accumulate);
void umg_push_layernorm (UmgGraph *graph, UmgRef x, gint rows, gint cols, gint src_stride,
                         UmgRef weight, UmgRef bias, gfloat eps, UmgRef out, gint dst_stride);

/* Which products of one sequence's q, k and v make the attention logits. */
typedef enum
{
  UMG_LOGITS_QK,
  UMG_LOGITS_QQ,
  UMG_LOGITS_KK,
} UmgLogits;

/* attended[seq] (+)= softmax(s · left · rightᵀ + bias) · v for every head of sequence seq,
 * reading buffers->qkv and writing buffers->scores and buffers->attended. */
void umg_push_attention (UmgGraph *graph, const UmgTower *tower, const UmgBlockBuffers *buffers,
                         gint seq, UmgLogits logits, gboolean causal, UmgRef bias,
                         gboolean accumulate);

/* x = x + out_proj(attention(ln_1(x))); x = x + fc2(act(fc1(ln_2(x)))). */
void umg_push_block (UmgGraph *graph, const UmgTower *tower, const UmgLayerWeights *layer,
                     const UmgBlockBuffers *buffers, gboolean causal);
/* The same block, non-causal, when only the first token's output is used (the vision tower's
 * class token after its last block): qkv of every token (left in buffers->qkv),
 * attention, projection and MLP for the first token of each sequence only. The other rows of
 * x keep the block's input. */
void umg_push_block_first_token (UmgGraph *graph, const UmgTower *tower,
                                 const UmgLayerWeights *layer, const UmgBlockBuffers *buffers);

/* A float32 copy of a weight as a graph constant. */
UmgRef umg_push_const_copy (UmgGraph *graph, const UmgModel *model, guint weight, gsize n_rows,
                            gsize n_cols, gfloat *data_or_null);

G_END_DECLS
