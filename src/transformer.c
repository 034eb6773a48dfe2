/* The pre-LN transformer block of both CLIP towers as graph ops. Attention runs per head as
 * two batched matrix products over strided slices of the fused qkv buffer, with a softmax
 * between them, so both backends need only generic ops. */
#include "transformer.h"

#include <math.h>

void
umg_block_buffers_alloc (UmgGraph *graph, const UmgTower *tower, gint n_seq, gint seq_len,
                         gboolean separate_sequences, UmgBlockBuffers *buffers)
{
  gsize tokens = (gsize) n_seq * seq_len;
  buffers->n_seq = n_seq;
  buffers->seq_len = seq_len;
  buffers->separate_sequences = separate_sequences;
  buffers->x = umg_graph_alloc (graph, tokens * tower->width);
  buffers->normed = umg_graph_alloc (graph, tokens * tower->width);
  buffers->qkv = umg_graph_alloc (graph, tokens * 3 * tower->width);
  buffers->scores = umg_graph_alloc (graph, (gsize) n_seq * tower->heads * seq_len * seq_len);
  buffers->attended = umg_graph_alloc (graph, tokens * tower->width);
  buffers->hidden = umg_graph_alloc (graph, tokens * tower->mlp_width);
}

/* batch blocks of rows × k by weightᵀ: block b's rows at x + b stride_a, its output at
 * out + b stride_c. */
static void
push_linear_strided (UmgGraph *graph, UmgRef x, gint n_seq, gint rows, gint k, UmgRef weight,
                     UmgRef bias, gint n, UmgRef out, gint64 stride_a, gint64 stride_c,
                     UmgActivation act, gboolean accumulate)
{
  UmgOp op = { .type = UMG_OP_MATMUL };
  op.src[0] = x;
  op.src[1] = weight;
  op.src[2] = bias;
  op.dst = out;
  op.p.mm = (UmgMatmulParams){
    .m = rows,
    .n = n,
    .k = k,
    .batch = n_seq,
    .lda = k,
    .ldb = k,
    .ldc = n,
    .stride_a = stride_a,
    .stride_b = 0,
    .stride_c = stride_c,
    .trans_b = TRUE,
    .accumulate = accumulate,
    .act = act,
    .alpha = 1.0f,
  };
  umg_graph_push (graph, &op);
}

void
umg_push_linear_blocks (UmgGraph *graph, UmgRef x, gint n_seq, gint rows, gint k, UmgRef weight,
                        UmgRef bias, gint n, UmgRef out, UmgActivation act, gboolean accumulate)
{
  push_linear_strided (graph, x, n_seq, rows, k, weight, bias, n, out, (gint64) rows * k,
                       (gint64) rows * n, act, accumulate);
}

void
umg_push_linear (UmgGraph *graph, UmgRef x, gint rows, gint k, UmgRef weight, UmgRef bias, gint n,
                 UmgRef out, UmgActivation act, gboolean accumulate)
{
  umg_push_linear_blocks (graph, x, 1, rows, k, weight, bias, n, out, act, accumulate);
}

/* A linear layer over every token of buffers, stacked or one block per sequence. */
static void
push_token_linear (UmgGraph *graph, const UmgBlockBuffers *buffers, UmgRef x, gint k, UmgRef weight,
                   UmgRef bias, gint n, UmgRef out, UmgActivation act, gboolean accumulate)
{
  if (buffers->separate_sequences)
    umg_push_linear_blocks (graph, x, buffers->n_seq, buffers->seq_len, k, weight, bias, n, out,
                            act, accumulate);
  else
    umg_push_linear (graph, x, buffers->n_seq * buffers->seq_len, k, weight, bias, n, out, act,
                     accumulate);
}

void
umg_push_layernorm (UmgGraph *graph, UmgRef x, gint rows, gint cols, gint src_stride, UmgRef weight,
                    UmgRef bias, gfloat eps, UmgRef out, gint dst_stride)
{
  UmgOp op = { .type = UMG_OP_LAYERNORM };
  op.src[0] = x;
  op.src[1] = weight;
  op.src[2] = bias;
  op.dst = out;
  op.p.ln.rows = rows;
  op.p.ln.cols = cols;
  op.p.ln.src_stride = src_stride;
  op.p.ln.dst_stride = dst_stride;
  op.p.ln.eps = eps;
  umg_graph_push (graph, &op);
}

/* Attention of the first `queries` tokens of sequence seq (every token: seq_len) over all of
 * its tokens. */
static void
push_attention_rows (UmgGraph *graph, const UmgTower *tower, const UmgBlockBuffers *buffers,
                     gint seq, gint queries, UmgLogits logits, gboolean causal, UmgRef bias,
                     gboolean accumulate)
{
  const gint width = tower->width, heads = tower->heads, head_dim = width / heads;
  const gint len = buffers->seq_len;
  const gsize first = (gsize) seq * len;
  UmgRef q = umg_ref_offset (buffers->qkv, first * 3 * width);
  UmgRef k = umg_ref_offset (q, width);
  UmgRef v = umg_ref_offset (q, 2 * width);
  UmgRef scores = umg_ref_offset (buffers->scores, (gsize) seq * heads * len * len);
  UmgOp logits_op = { .type = UMG_OP_MATMUL }, softmax = { .type = UMG_OP_SOFTMAX };
  UmgOp mix = { .type = UMG_OP_MATMUL };

  logits_op.src[0] = logits == UMG_LOGITS_KK ? k : q;
  logits_op.src[1] = logits == UMG_LOGITS_QK || logits == UMG_LOGITS_KK ? k : q;
  logits_op.src[2] = UMG_REF_NONE;
  logits_op.dst = scores;
  logits_op.p.mm = (UmgMatmulParams){
    .m = queries,
    .n = len,
    .k = head_dim,
    .batch = heads,
    .lda = 3 * width,
    .ldb = 3 * width,
    .ldc = len,
    .stride_a = head_dim,
    .stride_b = head_dim,
    .stride_c = (gint64) queries * len,
    .trans_b = TRUE,
    .alpha = 1.0f / sqrtf ((gfloat) head_dim),
  };
  umg_graph_push (graph, &logits_op);

  softmax.src[0] = bias;
  softmax.dst = scores;
  softmax.p.softmax.batch = heads;
  softmax.p.softmax.rows = queries;
  softmax.p.softmax.cols = len;
  softmax.p.softmax.causal = causal;
  umg_graph_push (graph, &softmax);

  mix.src[0] = scores;
  mix.src[1] = v;
  mix.src[2] = UMG_REF_NONE;
  mix.dst = umg_ref_offset (buffers->attended, first * width);
  mix.p.mm = (UmgMatmulParams){
    .m = queries,
    .n = head_dim,
    .k = len,
    .batch = heads,
    .lda = len,
    .ldb = 3 * width,
    .ldc = width,
    .stride_a = (gint64) queries * len,
    .stride_b = head_dim,
    .stride_c = head_dim,
    .trans_b = FALSE,
    .accumulate = accumulate,
    .alpha = 1.0f,
  };
  umg_graph_push (graph, &mix);
}

void
umg_push_attention (UmgGraph *graph, const UmgTower *tower, const UmgBlockBuffers *buffers,
                    gint seq, UmgLogits logits, gboolean causal, UmgRef bias, gboolean accumulate)
{
  push_attention_rows (graph, tower, buffers, seq, buffers->seq_len, logits, causal, bias,
                       accumulate);
}

/* A linear layer over the first token of each sequence: rows in_stride apart in x, out_stride
 * apart in out. */
static void
push_first_token_linear (UmgGraph *graph, const UmgBlockBuffers *buffers, UmgRef x, gint in_stride,
                         gint k, UmgRef weight, UmgRef bias, gint n, UmgRef out, gint out_stride,
                         UmgActivation act, gboolean accumulate)
{
  push_linear_strided (graph, x, buffers->n_seq, 1, k, weight, bias, n, out, in_stride, out_stride,
                       act, accumulate);
}

/* qkv = qkv_proj(ln_1(x)) for every token. */
static void
push_qkv (UmgGraph *graph, const UmgTower *tower, const UmgLayerWeights *layer,
          const UmgBlockBuffers *buffers)
{
  const gint width = tower->width;
  const gint tokens = buffers->n_seq * buffers->seq_len;
  umg_push_layernorm (graph, buffers->x, tokens, width, width, umg_ref_weight (layer->ln1_weight),
                      umg_ref_weight (layer->ln1_bias), tower->eps, buffers->normed, width);
  push_token_linear (graph, buffers, buffers->normed, width, umg_ref_weight (layer->qkv_weight),
                     umg_ref_weight (layer->qkv_bias), 3 * width, buffers->qkv, UMG_ACT_NONE,
                     FALSE);
}

void
umg_push_block_first_token (UmgGraph *graph, const UmgTower *tower, const UmgLayerWeights *layer,
                            const UmgBlockBuffers *buffers)
{
  const gint width = tower->width;
  const gint seq_stride = buffers->seq_len * width;

  /* keys and values of every token; the rest for the first token only */
  push_qkv (graph, tower, layer, buffers);
  for (gint seq = 0; seq < buffers->n_seq; seq++)
    push_attention_rows (graph, tower, buffers, seq, 1, UMG_LOGITS_QK, FALSE, UMG_REF_NONE, FALSE);
  push_first_token_linear (graph, buffers, buffers->attended, seq_stride, width,
                           umg_ref_weight (layer->out_weight), umg_ref_weight (layer->out_bias),
                           width, buffers->x, seq_stride, UMG_ACT_NONE, TRUE);

  /* the first tokens' rows, packed: normed[s], hidden[s] */
  umg_push_layernorm (graph, buffers->x, buffers->n_seq, width, seq_stride,
                      umg_ref_weight (layer->ln2_weight), umg_ref_weight (layer->ln2_bias),
                      tower->eps, buffers->normed, width);
  push_first_token_linear (graph, buffers, buffers->normed, width, width,
                           umg_ref_weight (layer->fc1_weight), umg_ref_weight (layer->fc1_bias),
                           tower->mlp_width, buffers->hidden, tower->mlp_width, tower->act, FALSE);
  push_first_token_linear (graph, buffers, buffers->hidden, tower->mlp_width, tower->mlp_width,
                           umg_ref_weight (layer->fc2_weight), umg_ref_weight (layer->fc2_bias),
                           width, buffers->x, seq_stride, UMG_ACT_NONE, TRUE);
}

void
umg_push_block (UmgGraph *graph, const UmgTower *tower, const UmgLayerWeights *layer,
                const UmgBlockBuffers *buffers, gboolean causal)
{
  const gint width = tower->width;
  const gint tokens = buffers->n_seq * buffers->seq_len;

  push_qkv (graph, tower, layer, buffers);
  for (gint seq = 0; seq < buffers->n_seq; seq++)
    umg_push_attention (graph, tower, buffers, seq, UMG_LOGITS_QK, causal, UMG_REF_NONE, FALSE);
  push_token_linear (graph, buffers, buffers->attended, width, umg_ref_weight (layer->out_weight),
                     umg_ref_weight (layer->out_bias), width, buffers->x, UMG_ACT_NONE, TRUE);

  umg_push_layernorm (graph, buffers->x, tokens, width, width, umg_ref_weight (layer->ln2_weight),
                      umg_ref_weight (layer->ln2_bias), tower->eps, buffers->normed, width);
  push_token_linear (graph, buffers, buffers->normed, width, umg_ref_weight (layer->fc1_weight),
                     umg_ref_weight (layer->fc1_bias), tower->mlp_width, buffers->hidden,
                     tower->act, FALSE);
  push_token_linear (graph, buffers, buffers->hidden, tower->mlp_width,
                     umg_ref_weight (layer->fc2_weight), umg_ref_weight (layer->fc2_bias), width,
                     buffers->x, UMG_ACT_NONE, TRUE);
}

UmgRef
umg_push_const_copy (UmgGraph *graph, const UmgModel *model, guint weight, gsize n_rows,
                     gsize n_cols, gfloat *data_or_null)
{
  UmgTensor *tensor = g_new0 (UmgTensor, 1);
  const UmgTensor *source = umg_model_weight (model, weight);
  tensor->name = g_strdup (source->name);
  tensor->dtype = UMG_DTYPE_F32;
  tensor->n_dims = 2;
  tensor->shape[0] = n_rows;
  tensor->shape[1] = n_cols;
  tensor->n_elements = n_rows * n_cols;
  tensor->owned = data_or_null ? data_or_null : umg_model_weight_f32 (model, weight);
  tensor->data = tensor->owned;
  return umg_graph_add_const (graph, tensor);
}
