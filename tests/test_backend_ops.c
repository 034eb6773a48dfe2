/* Every op of graph.h on the Vulkan backend against the CPU backend (the reference) on random
 * data of awkward sizes, in the manner of ggml's test-backend-ops: one line per case with the
 * normalised error |vulkan - cpu| / |cpu|. Plus device selection, plan reuse and a timing. */
#include "backend.h"
#include "frame.h"
#include "transformer.h"
#include "umgclip.h"

#include <math.h>
#include <string.h>

#define TOLERANCE_F32 1e-4
#define SEED 20240117

/* Weights shared by every case, uploaded once to both backends. Matrices named rowsxcols. */
typedef enum
{
  W_768x100, /* B [k 768, n 100] */
  W_BIAS_100,
  W_768x33, /* B^T [n 768, k 33] */
  W_BIAS_768,
  W_33x100_F16, /* B^T [n 33, k 100] */
  W_BIAS_33,
  W_768x3072_F16, /* B [k 768, n 3072] */
  W_BIAS_3072,
  W_768x768_F16, /* B^T [768, 768] */
  W_3072x768,    /* B^T [n 3072, k 768] */
  W_GAMMA_768,
  W_BETA_768,
  W_TABLE_1000x100,
  W_TABLE_500x64_F16,
  N_WEIGHTS
} WeightId;

static const struct
{
  const gchar *name;
  UmgDtype dtype;
  gsize rows, cols;     /* rows 0: one-dimensional */
  gfloat offset, scale; /* values offset + scale · U(-1, 1) */
} weight_specs[N_WEIGHTS] = {
  [W_768x100] = { "b_768x100", UMG_DTYPE_F32, 768, 100, 0.0f, 0.036f },
  [W_BIAS_100] = { "bias_100", UMG_DTYPE_F32, 0, 100, 0.0f, 0.5f },
  [W_768x33] = { "b_768x33", UMG_DTYPE_F32, 768, 33, 0.0f, 0.3f },
  [W_BIAS_768] = { "bias_768", UMG_DTYPE_F32, 0, 768, 0.0f, 0.5f },
  [W_33x100_F16] = { "b_33x100_f16", UMG_DTYPE_F16, 33, 100, 0.0f, 0.17f },
  [W_BIAS_33] = { "bias_33", UMG_DTYPE_F16, 0, 33, 0.0f, 0.5f },
  [W_768x3072_F16] = { "b_768x3072_f16", UMG_DTYPE_F16, 768, 3072, 0.0f, 0.06f },
  [W_BIAS_3072] = { "bias_3072", UMG_DTYPE_F32, 0, 3072, 0.0f, 0.5f },
  [W_768x768_F16] = { "b_768x768_f16", UMG_DTYPE_F16, 768, 768, 0.0f, 0.06f },
  [W_3072x768] = { "b_3072x768", UMG_DTYPE_F32, 3072, 768, 0.0f, 0.06f },
  [W_GAMMA_768] = { "gamma_768", UMG_DTYPE_F32, 0, 768, 1.0f, 0.5f },
  [W_BETA_768] = { "beta_768", UMG_DTYPE_F32, 0, 768, 0.0f, 0.5f },
  [W_TABLE_1000x100] = { "table_1000x100", UMG_DTYPE_F32, 1000, 100, 0.0f, 1.0f },
  [W_TABLE_500x64_F16] = { "table_500x64_f16", UMG_DTYPE_F16, 500, 64, 0.0f, 1.0f },
};

static UmgTensor weights[N_WEIGHTS];
static UmgBackend *vulkan;
static UmgBackend *cpu;
static GRand *rng;

static gfloat
uniform (gfloat low, gfloat high)
{
  return (gfloat) g_rand_double_range (rng, low, high);
}

static void
make_weights (void)
{
  for (guint w = 0; w < N_WEIGHTS; w++)
    {
      gsize n = (weight_specs[w].rows > 0 ? weight_specs[w].rows : 1) * weight_specs[w].cols;
      gboolean half = weight_specs[w].dtype == UMG_DTYPE_F16;
      gpointer data = g_malloc (n * (half ? 2 : 4));

      for (gsize i = 0; i < n; i++)
        {
          gfloat value = weight_specs[w].offset + weight_specs[w].scale * uniform (-1, 1);
          if (half)
            ((guint16 *) data)[i] = umg_float_to_half (value);
          else
            ((gfloat *) data)[i] = value;
        }
      weights[w] = (UmgTensor){
        .name = g_strdup (weight_specs[w].name),
        .dtype = weight_specs[w].dtype,
        .n_dims = weight_specs[w].rows > 0 ? 2 : 1,
        .shape = { weight_specs[w].rows > 0 ? weight_specs[w].rows : weight_specs[w].cols,
                   weight_specs[w].cols },
        .n_elements = n,
        .data = data,
        .owned = data,
      };
    }
}

/* ---- one case: a small graph, its inputs, run on both backends --------------------------- */

typedef struct
{
  UmgGraph *graph;
  GPtrArray *inputs; /* gfloat * (or gint32 *), one per graph input */
} Case;

static Case *
case_new (void)
{
  Case *c = g_new0 (Case, 1);
  c->graph = umg_graph_new ();
  c->inputs = g_ptr_array_new_with_free_func (g_free);
  return c;
}

static void
case_free (Case *c)
{
  umg_graph_free (c->graph);
  g_ptr_array_unref (c->inputs);
  g_free (c);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Case, case_free)

/* An arena input of n elements; values NULL: uniform in [low, high). */
static UmgRef
case_input (Case *c, gsize n, gfloat low, gfloat high, const gfloat *values)
{
  UmgRef ref = umg_graph_alloc (c->graph, n);
  gfloat *data = g_new (gfloat, MAX (n, 1));

  for (gsize i = 0; i < n; i++)
    data[i] = values != NULL ? values[i] : uniform (low, high);
  umg_graph_add_input (c->graph, ref, n);
  g_ptr_array_add (c->inputs, data);
  return ref;
}

static UmgRef
case_input_ids (Case *c, gsize n, gint32 table_rows)
{
  UmgRef ref = umg_graph_alloc (c->graph, n);
  gint32 *ids = g_new (gint32, MAX (n, 1));

  for (gsize i = 0; i < n; i++)
    ids[i] = g_rand_int_range (rng, 0, table_rows);
  umg_graph_add_input (c->graph, ref, n);
  g_ptr_array_add (c->inputs, ids);
  return ref;
}

static UmgRef
case_const (Case *c, gsize n, gfloat low, gfloat high)
{
  UmgTensor *tensor = g_new0 (UmgTensor, 1);
  gfloat *data = g_new (gfloat, n);

  for (gsize i = 0; i < n; i++)
    data[i] = uniform (low, high);
  *tensor = (UmgTensor){
    .name = g_strdup ("test constant"),
    .dtype = UMG_DTYPE_F32,
    .n_dims = 1,
    .shape = { n },
    .n_elements = n,
    .data = data,
    .owned = data,
  };
  return umg_graph_add_const (c->graph, tensor);
}

static gsize
case_output_elements (Case *c)
{
  gsize total = 0;
  for (guint i = 0; i < c->graph->outputs->len; i++)
    total += g_array_index (c->graph->outputs, UmgSlot, i).n_elements;
  return total;
}

/* Runs the graph on a backend; all outputs concatenated into out. */
static gboolean
run_on (UmgBackend *backend, Case *c, gfloat *out, GError **error)
{
  g_autofree gpointer *outputs = g_new0 (gpointer, MAX (c->graph->outputs->len, 1));
  UmgPlan *plan = backend->klass->plan (backend, c->graph, error);
  gsize position = 0;
  gboolean ok;

  if (plan == NULL)
    return FALSE;
  for (guint i = 0; i < c->graph->outputs->len; i++)
    {
      outputs[i] = out + position;
      position += g_array_index (c->graph->outputs, UmgSlot, i).n_elements;
    }
  ok = backend->klass->run (backend, plan, (const void *const *) c->inputs->pdata, NULL,
                            (void *const *) outputs, error);
  backend->klass->free_plan (backend, plan);
  return ok;
}

static gdouble
normalised_error (const gfloat *got, const gfloat *want, gsize n)
{
  gdouble diff = 0.0, norm = 0.0;

  for (gsize i = 0; i < n; i++)
    {
      gdouble d = (gdouble) got[i] - want[i];
      diff += d * d;
      norm += (gdouble) want[i] * want[i];
    }
  return norm > 0.0 ? sqrt (diff / norm) : sqrt (diff);
}

/* Runs the case on both backends and reports the normalised error; FALSE marks the test
 * failed but lets the remaining cases run and print. */
static gboolean
case_check (Case *c, const gchar *op, const gchar *sizes, gdouble tolerance)
{
  gsize n = case_output_elements (c);
  g_autofree gfloat *got = g_new0 (gfloat, MAX (n, 1));
  g_autofree gfloat *want = g_new0 (gfloat, MAX (n, 1));
  g_autoptr (GError) error = NULL;
  gdouble err;

  if (!run_on (cpu, c, want, &error) || !run_on (vulkan, c, got, &error))
    {
      g_print ("  %-10s %-58s ERROR %s\n", op, sizes, error->message);
      g_test_fail_printf ("%s %s: %s", op, sizes, error->message);
      return FALSE;
    }
  err = normalised_error (got, want, n);
  g_print ("  %-10s %-58s err %.2e %s\n", op, sizes, err, err <= tolerance ? "ok" : "FAIL");
  if (!(err <= tolerance))
    {
      g_test_fail_printf ("%s %s: normalised error %.3e above %.1e", op, sizes, err, tolerance);
      return FALSE;
    }
  return TRUE;
}

/* ---- matmul ------------------------------------------------------------------------------ */

typedef struct
{
  gint m, n, k, batch;
  gboolean trans_b;
  gint weight; /* WeightId for B, or -1: B from the arena */
  gint bias;   /* WeightId, or -1 */
  UmgActivation act;
  gboolean accumulate;
  gfloat alpha;
  gint pad;          /* extra elements between rows (lda, ldb, ldc) and batches */
  gboolean shared_b; /* stride_b 0: every batch uses the same B */
  gboolean b_const;  /* B as a graph constant */
} MatmulCase;

static const gchar *act_names[] = { "none", "quick_gelu", "gelu" };

static void
check_matmul (const MatmulCase *mc)
{
  g_autoptr (Case) c = case_new ();
  UmgOp op = { .type = UMG_OP_MATMUL };
  UmgMatmulParams *mm = &op.p.mm;
  gsize b_rows = mc->trans_b ? mc->n : mc->k, b_cols = mc->trans_b ? mc->k : mc->n;
  g_autofree gchar *sizes = NULL;
  gsize c_elements;

  *mm = (UmgMatmulParams){
    .m = mc->m,
    .n = mc->n,
    .k = mc->k,
    .batch = mc->batch,
    .lda = mc->k + mc->pad,
    .ldc = mc->n + mc->pad,
    .trans_b = mc->trans_b,
    .accumulate = mc->accumulate,
    .act = mc->act,
    .alpha = mc->alpha,
  };
  mm->stride_a = (gint64) mc->m * mm->lda + mc->pad;
  mm->stride_c = (gint64) mc->m * mm->ldc + mc->pad;
  op.src[0] = case_input (c, mm->stride_a * mc->batch, -1, 1, NULL);
  if (mc->weight >= 0)
    {
      g_assert_cmpuint (weight_specs[mc->weight].rows, ==, b_rows);
      g_assert_cmpuint (weight_specs[mc->weight].cols, ==, b_cols);
      op.src[1] = umg_ref_weight (mc->weight);
      mm->ldb = b_cols;
    }
  else
    {
      mm->ldb = b_cols + mc->pad;
      mm->stride_b = mc->shared_b ? 0 : (gint64) b_rows * mm->ldb + mc->pad;
      if (mc->b_const)
        op.src[1] = case_const (c, b_rows * mm->ldb + mm->stride_b * (mc->batch - 1), -1, 1);
      else
        op.src[1] = case_input (c, b_rows * mm->ldb + mm->stride_b * (mc->batch - 1), -1, 1, NULL);
    }
  op.src[2] = mc->bias >= 0 ? umg_ref_weight (mc->bias) : UMG_REF_NONE;
  /* C is an input too: padding must match and accumulate needs a start value */
  c_elements = mm->stride_c * mc->batch;
  op.dst = case_input (c, c_elements, -1, 1, NULL);
  umg_graph_push (c->graph, &op);
  umg_graph_add_output (c->graph, op.dst, c_elements);

  sizes = g_strdup_printf ("%dx%dx%d b%d%s %s%s%s act=%s%s a=%.2g%s", mc->m, mc->n, mc->k,
                           mc->batch, mc->trans_b ? " B^T" : "",
                           mc->weight < 0 ? (mc->b_const ? "B=const" : "B=arena")
                           : weight_specs[mc->weight].dtype == UMG_DTYPE_F16 ? "B=f16"
                                                                             : "B=f32",
                           mc->shared_b ? " shared" : "", mc->bias >= 0 ? " bias" : "",
                           act_names[mc->act], mc->accumulate ? " acc" : "", mc->alpha,
                           mc->pad ? " padded" : "");
  case_check (c, "matmul", sizes, TOLERANCE_F32);
}

static void
test_matmul (void)
{
  /* m, n, k, batch, trans_b, B weight, bias, act, accumulate, alpha, pad, shared B, B const */
  static const MatmulCase cases[] = {
    { 197, 100, 768, 1, FALSE, W_768x100, W_BIAS_100, UMG_ACT_NONE, FALSE, 1.0f, 0, FALSE, FALSE },
    { 77, 768, 33, 1, TRUE, W_768x33, W_BIAS_768, UMG_ACT_QUICK_GELU, FALSE, 1.0f, 0, FALSE,
      FALSE },
    { 50, 33, 100, 1, TRUE, W_33x100_F16, W_BIAS_33, UMG_ACT_GELU, FALSE, 1.0f, 0, FALSE, FALSE },
    { 17, 3072, 768, 1, FALSE, W_768x3072_F16, W_BIAS_3072, UMG_ACT_GELU, FALSE, 1.0f, 0, FALSE,
      FALSE },
    { 197, 768, 768, 1, TRUE, W_768x768_F16, -1, UMG_ACT_NONE, TRUE, 1.0f, 0, FALSE, FALSE },
    { 50, 3072, 768, 1, TRUE, W_3072x768, W_BIAS_3072, UMG_ACT_QUICK_GELU, FALSE, 1.0f, 0, FALSE,
      FALSE },
    { 17, 33, 50, 1, FALSE, -1, W_BIAS_33, UMG_ACT_GELU, TRUE, 0.5f, 0, FALSE, FALSE },
    { 50, 33, 7, 3, FALSE, -1, -1, UMG_ACT_NONE, FALSE, 0.37f, 5, FALSE, FALSE },
    { 50, 33, 7, 3, TRUE, -1, -1, UMG_ACT_QUICK_GELU, TRUE, -1.5f, 3, FALSE, FALSE },
    { 33, 100, 768, 4, FALSE, W_768x100, -1, UMG_ACT_NONE, FALSE, 1.0f, 0, FALSE, FALSE },
    { 77, 65, 129, 2, TRUE, -1, -1, UMG_ACT_NONE, FALSE, 1.0f, 1, TRUE, FALSE },
    { 65, 77, 31, 1, FALSE, -1, -1, UMG_ACT_GELU, FALSE, 2.0f, 0, FALSE, TRUE },
    { 1, 1, 1, 1, FALSE, -1, -1, UMG_ACT_NONE, FALSE, 1.0f, 0, FALSE, FALSE },
    { 5, 3, 1, 2, TRUE, -1, -1, UMG_ACT_GELU, TRUE, 1.0f, 2, FALSE, FALSE },
    { 130, 1, 33, 1, TRUE, -1, -1, UMG_ACT_NONE, FALSE, 1.0f, 0, FALSE, FALSE },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    check_matmul (&cases[i]);
}

/* Multi-head attention exactly as the graphs build it (umg_push_attention): Q, K and V are
 * column slices of one [T, 3D] buffer (lda 3D), heads are batches head_dim columns apart;
 * S = s·QK^T, softmax, O = S·V written back into a [T, D] buffer with ldc D. */
static void
check_attention (gint tokens, gint width, gint heads, gboolean causal)
{
  g_autoptr (Case) c = case_new ();
  UmgTower tower = { .width = width, .heads = heads };
  UmgBlockBuffers buffers = { .n_seq = 1, .seq_len = tokens };
  g_autofree gchar *sizes = NULL;

  buffers.qkv = case_input (c, (gsize) tokens * 3 * width, -2, 2, NULL);
  buffers.scores = umg_graph_alloc (c->graph, (gsize) heads * tokens * tokens);
  buffers.attended = umg_graph_alloc (c->graph, (gsize) tokens * width);
  umg_push_attention (c->graph, &tower, &buffers, 0, UMG_LOGITS_QK, causal, UMG_REF_NONE, FALSE);
  umg_graph_add_output (c->graph, buffers.attended, (gsize) tokens * width);

  sizes = g_strdup_printf ("T%d D%d %d heads, QKV slices lda %d%s", tokens, width, heads, 3 * width,
                           causal ? ", causal" : "");
  case_check (c, "attention", sizes, TOLERANCE_F32);
}

static void
test_attention (void)
{
  check_attention (197, 768, 12, FALSE);
  check_attention (77, 512, 8, TRUE);
  check_attention (50, 96, 3, FALSE);
  check_attention (17, 100, 4, TRUE);
}

/* Barriers are only recorded between dependent dispatches. Three projections of one input
 * are independent; the add reads two of their results (read after write), the copy
 * overwrites the input they read (write after read), the l2norm rewrites the copy's output
 * in place. Run with synchronization validation, a missing barrier is an error. */
static void
test_dependencies (void)
{
  g_autoptr (Case) c = case_new ();
  UmgRef x = case_input (c, 50 * 33, -1, 1, NULL);
  UmgRef projections[3];
  UmgOp op;

  for (guint i = 0; i < 3; i++)
    {
      projections[i] = umg_graph_alloc (c->graph, 50 * 768);
      op = (UmgOp){ .type = UMG_OP_MATMUL };
      op.src[0] = x;
      op.src[1] = umg_ref_weight (W_768x33);
      op.src[2] = i == 1 ? umg_ref_weight (W_BIAS_768) : UMG_REF_NONE;
      op.dst = projections[i];
      op.p.mm = (UmgMatmulParams){
        .m = 50,
        .n = 768,
        .k = 33,
        .batch = 1,
        .lda = 33,
        .ldb = 33,
        .ldc = 768,
        .trans_b = TRUE,
        .act = i == 2 ? UMG_ACT_GELU : UMG_ACT_NONE,
        .alpha = 1.0f,
      };
      umg_graph_push (c->graph, &op);
    }
  op = (UmgOp){ .type = UMG_OP_ADD };
  op.src[0] = projections[0];
  op.src[1] = projections[1];
  op.dst = projections[0];
  op.p.add.n = 50 * 768;
  op.p.add.n_b = 50 * 768;
  umg_graph_push (c->graph, &op);
  op = (UmgOp){ .type = UMG_OP_COPY };
  op.src[0] = umg_ref_offset (projections[2], 100);
  op.dst = x;
  op.p.copy = (__typeof__ (op.p.copy)){ 50, 33, 768, 33 };
  umg_graph_push (c->graph, &op);
  op = (UmgOp){ .type = UMG_OP_L2NORM };
  op.src[0] = x;
  op.dst = x;
  op.p.l2.rows = 50;
  op.p.l2.cols = 33;
  umg_graph_push (c->graph, &op);
  umg_graph_add_output (c->graph, projections[0], 50 * 768);
  umg_graph_add_output (c->graph, x, 50 * 33);
  case_check (c, "graph", "3 projections, add, copy over their input, l2norm", TOLERANCE_F32);
}

/* ---- the other ops ----------------------------------------------------------------------- */

static void
check_layernorm (gint rows, gint cols, gint src_pad, gint dst_pad, gboolean in_place,
                 gboolean weights_from_model, gfloat mean_offset)
{
  g_autoptr (Case) c = case_new ();
  UmgOp op = { .type = UMG_OP_LAYERNORM };
  gsize src_n = (gsize) rows * (cols + src_pad);
  g_autofree gchar *sizes = NULL;

  op.p.ln.rows = rows;
  op.p.ln.cols = cols;
  op.p.ln.src_stride = cols + src_pad;
  op.p.ln.dst_stride = in_place ? cols + src_pad : cols + dst_pad;
  op.p.ln.eps = 1e-5f;
  op.src[0] = case_input (c, src_n, mean_offset - 2, mean_offset + 2, NULL);
  if (weights_from_model)
    {
      op.src[1] = umg_ref_weight (W_GAMMA_768);
      op.src[2] = umg_ref_weight (W_BETA_768);
    }
  else
    {
      op.src[1] = case_const (c, cols, 0.5f, 1.5f);
      op.src[2] = case_const (c, cols, -0.5f, 0.5f);
    }
  op.dst = in_place ? op.src[0] : case_input (c, (gsize) rows * op.p.ln.dst_stride, 0, 0, NULL);
  umg_graph_push (c->graph, &op);
  umg_graph_add_output (c->graph, op.dst, (gsize) rows * op.p.ln.dst_stride);
  sizes = g_strdup_printf ("%dx%d strides %d/%d%s%s mean %g", rows, cols, op.p.ln.src_stride,
                           op.p.ln.dst_stride, in_place ? " in place" : "",
                           weights_from_model ? " weights" : " consts", mean_offset);
  case_check (c, "layernorm", sizes, TOLERANCE_F32);
}

static void
test_layernorm (void)
{
  check_layernorm (197, 768, 0, 0, FALSE, TRUE, 0.0f);
  check_layernorm (77, 512, 88, 8, FALSE, FALSE, 0.0f);
  check_layernorm (1, 768, 2304, 0, FALSE, TRUE, 0.0f);
  check_layernorm (50, 33, 0, 3, FALSE, FALSE, 0.0f);
  check_layernorm (17, 1000, 1, 0, TRUE, FALSE, 0.0f);
  check_layernorm (3, 768, 0, 0, FALSE, TRUE, 100.0f);
}

static void
check_softmax (gint batch, gint rows, gint cols, gboolean with_bias, gboolean causal, gfloat range)
{
  g_autoptr (Case) c = case_new ();
  UmgOp op = { .type = UMG_OP_SOFTMAX };
  gsize n = (gsize) batch * rows * cols;
  g_autofree gchar *sizes = NULL;

  op.p.softmax.batch = batch;
  op.p.softmax.rows = rows;
  op.p.softmax.cols = cols;
  op.p.softmax.causal = causal;
  op.src[0] = with_bias ? case_const (c, (gsize) rows * cols, -3, 3) : UMG_REF_NONE;
  op.dst = case_input (c, n, -range, range, NULL);
  umg_graph_push (c->graph, &op);
  umg_graph_add_output (c->graph, op.dst, n);
  sizes = g_strdup_printf ("%dx%dx%d%s%s range +-%g", batch, rows, cols, with_bias ? " bias" : "",
                           causal ? " causal" : "", range);
  case_check (c, "softmax", sizes, TOLERANCE_F32);
}

static void
test_softmax (void)
{
  check_softmax (12, 50, 50, TRUE, FALSE, 4);
  check_softmax (8, 77, 77, FALSE, TRUE, 4);
  check_softmax (1, 197, 197, FALSE, FALSE, 8);
  check_softmax (3, 17, 33, TRUE, TRUE, 4);
  check_softmax (2, 5, 1000, FALSE, FALSE, 30);
  check_softmax (1, 1, 1, TRUE, FALSE, 1);
}

static void
check_gather (gint rows, gint cols, WeightId table, gint column_offset)
{
  g_autoptr (Case) c = case_new ();
  UmgOp op = { .type = UMG_OP_GATHER };
  g_autofree gchar *sizes = NULL;

  op.p.gather.rows = rows;
  op.p.gather.cols = cols;
  op.p.gather.src_stride = weight_specs[table].cols;
  op.src[0] = umg_ref_offset (umg_ref_weight (table), column_offset);
  op.src[1] = case_input_ids (c, rows, weight_specs[table].rows - (column_offset > 0));
  op.dst = umg_graph_alloc (c->graph, (gsize) rows * cols);
  umg_graph_push (c->graph, &op);
  umg_graph_add_output (c->graph, op.dst, (gsize) rows * cols);
  sizes = g_strdup_printf ("%d ids x %d cols from %s +%d", rows, cols, weight_specs[table].name,
                           column_offset);
  case_check (c, "gather", sizes, TOLERANCE_F32);
}

static void
test_gather (void)
{
  check_gather (77, 100, W_TABLE_1000x100, 0);
  check_gather (50, 33, W_TABLE_500x64_F16, 0);
  check_gather (17, 33, W_TABLE_500x64_F16, 31);
  check_gather (197, 64, W_TABLE_500x64_F16, 0);
}

static void
check_im2col (gint channels, gint height, gint width, gint patch)
{
  g_autoptr (Case) c = case_new ();
  UmgOp op = { .type = UMG_OP_IM2COL };
  gsize n_out;
  g_autofree gchar *sizes = NULL;

  op.p.im2col = (__typeof__ (op.p.im2col)){
    channels, height, width, patch, height / patch, width / patch,
  };
  n_out = (gsize) (height / patch) * (width / patch) * channels * patch * patch;
  op.src[0] = case_input (c, (gsize) channels * height * width, -1, 1, NULL);
  op.dst = umg_graph_alloc (c->graph, n_out);
  umg_graph_push (c->graph, &op);
  umg_graph_add_output (c->graph, op.dst, n_out);
  sizes = g_strdup_printf ("%dx%dx%d patch %d", channels, height, width, patch);
  case_check (c, "im2col", sizes, TOLERANCE_F32);
}

static void
test_im2col (void)
{
  check_im2col (3, 224, 224, 16);
  check_im2col (3, 70, 50, 7);
  check_im2col (3, 100, 33, 32);
}

static void
check_add (gint64 n, gint64 n_b, gboolean in_place, gboolean b_weight)
{
  g_autoptr (Case) c = case_new ();
  UmgOp op = { .type = UMG_OP_ADD };
  g_autofree gchar *sizes = NULL;

  op.p.add.n = n;
  op.p.add.n_b = n_b;
  op.src[0] = case_input (c, n, -1, 1, NULL);
  op.src[1] = b_weight ? umg_ref_weight (W_BIAS_768) : case_input (c, n_b, -1, 1, NULL);
  op.dst = in_place ? op.src[0] : umg_graph_alloc (c->graph, n);
  umg_graph_push (c->graph, &op);
  umg_graph_add_output (c->graph, op.dst, n);
  sizes = g_strdup_printf ("n %" G_GINT64_FORMAT " n_b %" G_GINT64_FORMAT "%s%s", n, n_b,
                           in_place ? " in place" : "", b_weight ? " b=weight" : "");
  case_check (c, "add", sizes, TOLERANCE_F32);
}

static void
test_add (void)
{
  check_add (197 * 768, 768, TRUE, TRUE);
  check_add (12345, 5, FALSE, FALSE);
  check_add (1000, 1000, FALSE, FALSE);
  check_add (77 * 512 + 1, 1, TRUE, FALSE);
}

static void
check_copy (gint rows, gint cols, gint src_stride, gint dst_stride)
{
  g_autoptr (Case) c = case_new ();
  UmgOp op = { .type = UMG_OP_COPY };
  gsize dst_n = (gsize) rows * dst_stride;
  g_autofree gchar *sizes = NULL;

  op.p.copy = (__typeof__ (op.p.copy)){ rows, cols, src_stride, dst_stride };
  op.src[0] = case_input (c, (gsize) rows * src_stride, -1, 1, NULL);
  op.dst = case_input (c, dst_n, -1, 1, NULL);
  umg_graph_push (c->graph, &op);
  umg_graph_add_output (c->graph, op.dst, dst_n);
  sizes = g_strdup_printf ("%dx%d strides %d -> %d", rows, cols, src_stride, dst_stride);
  case_check (c, "copy", sizes, TOLERANCE_F32);
}

static void
test_copy (void)
{
  check_copy (197, 64, 2304, 64);
  check_copy (50, 33, 33, 100);
  check_copy (1, 768, 768, 768);
  check_copy (77, 512, 1536, 512);
}

static void
check_roi_align (gint grid_h, gint grid_w, gint cols, gint output_size, gint sampling)
{
  /* cells, before the -0.5 shift: inside, partly outside on every side, fully outside,
   * degenerate, the whole map */
  static const gfloat boxes[][4] = {
    { 1.0f, 2.0f, 5.5f, 6.25f },  { -3.0f, -2.0f, 4.0f, 3.0f },
    { 4.0f, 3.0f, 40.0f, 30.0f }, { -10.0f, -10.0f, -5.0f, -4.0f },
    { 2.0f, 2.0f, 2.0f, 2.0f },   { 0.0f, 0.0f, 1000.0f, 1000.0f },
    { 0.3f, 6.7f, 1.1f, 7.9f },
  };
  gsize n_boxes = G_N_ELEMENTS (boxes);
  g_autoptr (Case) c = case_new ();
  UmgOp op = { .type = UMG_OP_ROI_ALIGN };
  gfloat shifted[G_N_ELEMENTS (boxes) * 4];
  g_autofree gchar *sizes = NULL;

  for (gsize b = 0; b < n_boxes; b++)
    for (gsize j = 0; j < 4; j++)
      shifted[b * 4 + j] = MIN (boxes[b][j], j % 2 == 0 ? grid_w : grid_h) - 0.5f;
  shifted[5 * 4 + 2] = grid_w - 0.5f;
  shifted[5 * 4 + 3] = grid_h - 0.5f;
  op.p.roi = (__typeof__ (op.p.roi)){ grid_h, grid_w, cols, n_boxes, output_size, sampling };
  op.src[0] = case_input (c, (gsize) grid_h * grid_w * cols, -1, 1, NULL);
  op.src[1] = case_input (c, n_boxes * 4, 0, 0, shifted);
  op.dst = umg_graph_alloc (c->graph, n_boxes * cols);
  umg_graph_push (c->graph, &op);
  umg_graph_add_output (c->graph, op.dst, n_boxes * cols);
  sizes = g_strdup_printf ("map %dx%dx%d, %" G_GSIZE_FORMAT " boxes, %d^2 bins x %d^2 samples",
                           grid_h, grid_w, cols, n_boxes, output_size, sampling);
  case_check (c, "roi_align", sizes, TOLERANCE_F32);
}

static void
test_roi_align (void)
{
  check_roi_align (14, 14, 512, 7, 2);
  check_roi_align (7, 10, 33, 2, 3);
  check_roi_align (24, 17, 100, 1, 1);
}

static void
check_l2norm (gint rows, gint cols, gboolean in_place, gboolean zero_row)
{
  g_autoptr (Case) c = case_new ();
  UmgOp op = { .type = UMG_OP_L2NORM };
  gsize n = (gsize) rows * cols;
  g_autofree gfloat *values = g_new (gfloat, n);
  g_autofree gchar *sizes = NULL;

  for (gsize i = 0; i < n; i++)
    values[i] = uniform (-3, 3);
  if (zero_row)
    memset (values, 0, cols * sizeof (gfloat));
  op.p.l2.rows = rows;
  op.p.l2.cols = cols;
  op.src[0] = case_input (c, n, 0, 0, values);
  op.dst = in_place ? op.src[0] : umg_graph_alloc (c->graph, n);
  umg_graph_push (c->graph, &op);
  umg_graph_add_output (c->graph, op.dst, n);
  sizes = g_strdup_printf ("%dx%d%s%s", rows, cols, in_place ? " in place" : "",
                           zero_row ? " zero row" : "");
  case_check (c, "l2norm", sizes, TOLERANCE_F32);
}

static void
test_l2norm (void)
{
  check_l2norm (17, 512, FALSE, FALSE);
  check_l2norm (3, 33, TRUE, TRUE);
  check_l2norm (100, 768, TRUE, FALSE);
}

/* A direct input of n_bytes random bytes (a frame plane, read where it lies). */
static UmgRef
case_direct_bytes (Case *c, gsize n_bytes)
{
  guint8 *data = g_malloc (MAX (n_bytes, 1));
  for (gsize i = 0; i < n_bytes; i++)
    data[i] = g_rand_int_range (rng, 0, 256);
  g_ptr_array_add (c->inputs, data);
  return umg_graph_add_direct_input (c->graph, n_bytes);
}

/* A frame of random bytes in format, with padded strides, each plane a direct input whose
 * last row ends at its last pixel, converted to a [3, out_h, out_w] tensor; crop NULL: the
 * whole frame, else that crop (which may reach past the frame: both backends clamp it). */
static void
check_preprocess (UmgClipPixelFormat format, gint width, gint height, gint out_w, gint out_h,
                  const UmgClipCrop *crop)
{
  static const gint bytes_per_pixel[] = { 3, 4, 4, 4, 4, 1, 1 };
  g_autoptr (Case) c = case_new ();
  UmgOp op = { .type = UMG_OP_PREPROCESS };
  const gint chroma_width = (width + 1) / 2;
  gint n_planes = format == UMGCLIP_FORMAT_NV12 ? 2 : format == UMGCLIP_FORMAT_I420 ? 3 : 1;
  gsize n = 3 * (gsize) out_w * out_h, bytes[3];
  g_autofree gchar *sizes = NULL;

  op.p.preprocess.format = format;
  op.p.preprocess.width = width;
  op.p.preprocess.height = height;
  op.p.preprocess.out_w = out_w;
  op.p.preprocess.out_h = out_h;
  if (format == UMGCLIP_FORMAT_I420)
    {
      /* BT.709, full range, as HD cameras send */
      op.p.preprocess.kr = 0.2126f;
      op.p.preprocess.kb = 0.0722f;
      op.p.preprocess.full_range = TRUE;
    }
  for (gint i = 0; i < n_planes; i++)
    {
      gint row_bytes = i == 0 ? width * bytes_per_pixel[format]
                              : (format == UMGCLIP_FORMAT_NV12 ? 2 * chroma_width : chroma_width);
      /* odd padding exercises the byte addressing */
      op.p.preprocess.strides[i] = row_bytes + 3 + i;
    }
  for (gint i = 0; i < 3; i++)
    {
      op.p.preprocess.mean[i] = uniform (0.3f, 0.6f);
      op.p.preprocess.std[i] = uniform (0.2f, 0.3f);
    }
  g_assert_cmpuint (umg_frame_plane_bytes (format, width, height, op.p.preprocess.strides, bytes),
                    ==, n_planes);
  for (gint i = 0; i < n_planes; i++)
    op.src[i] = case_direct_bytes (c, bytes[i]);
  {
    const gint32 whole[4] = { 0, 0, width, height };
    /* the crop is four i32: written over the input's values */
    op.src[3] = case_input (c, 4, 0, 1, NULL);
    memcpy (g_ptr_array_index (c->inputs, c->inputs->len - 1),
            crop != NULL ? (const gint32 *) crop : whole, sizeof whole);
  }
  op.dst = umg_graph_alloc (c->graph, n);
  umg_graph_push (c->graph, &op);
  umg_graph_add_output (c->graph, op.dst, n);
  sizes = crop == NULL
              ? g_strdup_printf ("%s %dx%d to %dx%d", umgclip_pixel_format_name (format), width,
                                 height, out_w, out_h)
              : g_strdup_printf ("%s %dx%d crop %d,%d %dx%d to %dx%d",
                                 umgclip_pixel_format_name (format), width, height, crop->x,
                                 crop->y, crop->width, crop->height, out_w, out_h);
  case_check (c, "preprocess", sizes, TOLERANCE_F32);
}

static void
test_preprocess (void)
{
  const UmgClipCrop inside = { 6, 4, 19, 13 }, past_edge = { 30, -5, 40, 12 };
  for (gint format = UMGCLIP_FORMAT_RGB; format <= UMGCLIP_FORMAT_I420; format++)
    {
      check_preprocess (format, 37, 23, 32, 24, NULL);
      check_preprocess (format, 17, 11, 50, 41, NULL);
      check_preprocess (format, 37, 23, 16, 16, &inside);
      check_preprocess (format, 37, 23, 16, 16, &past_edge);
    }
  check_preprocess (UMGCLIP_FORMAT_NV12, 640, 480, 224, 224, NULL);
}

/* ---- activations against libm ------------------------------------------------------------ */

/* The shaders have no erf; the matmul epilogue's own must match libm's. A k = 1 matmul with
 * B = 1 applies the activation to A itself. */
static void
test_activations (void)
{
  const gint n = 4001;
  for (gint act = UMG_ACT_QUICK_GELU; act <= UMG_ACT_GELU; act++)
    {
      g_autoptr (Case) c = case_new ();
      g_autofree gfloat *x = g_new (gfloat, n);
      g_autofree gfloat *got = g_new (gfloat, n);
      g_autoptr (GError) error = NULL;
      gfloat one = 1.0f;
      UmgOp op = { .type = UMG_OP_MATMUL };
      /* worst relative error where y >= 0 and where y < 0 (the tail, |y| > 1e-3), and the
       * worst absolute error anywhere */
      gdouble worst_positive = 0.0, worst_negative = 0.0, worst_absolute = 0.0;

      for (gint i = 0; i < n; i++)
        x[i] = -10.0f + 20.0f * i / (n - 1);
      op.src[0] = case_input (c, n, 0, 0, x);
      op.src[1] = case_input (c, 1, 0, 0, &one);
      op.src[2] = UMG_REF_NONE;
      op.dst = umg_graph_alloc (c->graph, n);
      op.p.mm = (UmgMatmulParams){
        .m = n,
        .n = 1,
        .k = 1,
        .batch = 1,
        .lda = 1,
        .ldb = 1,
        .ldc = 1,
        .act = act,
        .alpha = 1.0f,
      };
      umg_graph_push (c->graph, &op);
      umg_graph_add_output (c->graph, op.dst, n);
      g_assert_true (run_on (vulkan, c, got, &error));
      g_assert_no_error (error);
      for (gint i = 0; i < n; i++)
        {
          gdouble v = x[i];
          gdouble want = act == UMG_ACT_GELU ? 0.5 * v * erfc (-v / sqrt (2.0))
                                             : v / (1.0 + exp (-1.702 * v));
          gdouble absolute = fabs (got[i] - want);
          worst_absolute = MAX (worst_absolute, absolute);
          if (v > 0.0 && want > 1e-3)
            worst_positive = MAX (worst_positive, absolute / want);
          else if (v < 0.0 && want < -1e-3)
            worst_negative = MAX (worst_negative, absolute / -want);
        }
      g_print ("  %-10s x in [-10, 10] vs double libm: max rel err %.2e (x > 0), "
               "%.2e (x < 0, |y| > 1e-3); max abs err %.2e\n",
               act_names[act], worst_positive, worst_negative, worst_absolute);
      g_assert_cmpfloat (worst_positive, <, 1e-6);
      g_assert_cmpfloat (worst_negative, <, 5e-6);
      g_assert_cmpfloat (worst_absolute, <, 2e-6); /* 2 ulp at |y| = 10 */
      /* and against the CPU backend's erff / expf on the same points */
      case_check (c, act_names[act], "4001 points in [-10, 10]", 1e-6);
    }
}

/* ---- device selection, plan reuse, errors ------------------------------------------------ */

static void
test_bad_device_index (void)
{
  g_autoptr (GError) error = NULL;
  UmgBackend *backend = umg_backend_vulkan_new (97, TRUE, &error);

  g_assert_null (backend);
  g_assert_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE);
  g_print ("  error: %s\n", error->message);
  g_assert_nonnull (strstr (error->message, "97"));
}

static void
test_description (void)
{
  g_print ("  %s, has_gpu %d\n", vulkan->description, umg_backend_vulkan_has_gpu ());
  g_assert_true (g_str_has_prefix (vulkan->description, "vulkan: "));
  g_assert_cmpuint (strlen (vulkan->description), >, strlen ("vulkan: "));
}

static Case *
small_matmul_case (void)
{
  Case *c = case_new ();
  UmgOp op = { .type = UMG_OP_MATMUL };

  op.src[0] = case_input (c, 77 * 33, -1, 1, NULL);
  op.src[1] = umg_ref_weight (W_768x33);
  op.src[2] = umg_ref_weight (W_BIAS_768);
  op.dst = umg_graph_alloc (c->graph, 77 * 768);
  op.p.mm = (UmgMatmulParams){
    .m = 77,
    .n = 768,
    .k = 33,
    .batch = 1,
    .lda = 33,
    .ldb = 33,
    .ldc = 768,
    .trans_b = TRUE,
    .act = UMG_ACT_GELU,
    .alpha = 1.0f,
  };
  umg_graph_push (c->graph, &op);
  umg_graph_add_output (c->graph, op.dst, 77 * 768);
  return c;
}

static Case *
small_layernorm_case (void)
{
  Case *c = case_new ();
  UmgOp op = { .type = UMG_OP_LAYERNORM };

  op.src[0] = case_input (c, 50 * 768, -2, 2, NULL);
  op.src[1] = umg_ref_weight (W_GAMMA_768);
  op.src[2] = umg_ref_weight (W_BETA_768);
  op.dst = umg_graph_alloc (c->graph, 50 * 768);
  op.p.ln.rows = 50;
  op.p.ln.cols = 768;
  op.p.ln.src_stride = 768;
  op.p.ln.dst_stride = 768;
  op.p.ln.eps = 1e-5f;
  umg_graph_push (c->graph, &op);
  umg_graph_add_output (c->graph, op.dst, 50 * 768);
  return c;
}

static void
run_plan (UmgPlan *plan, Case *c, gfloat *out)
{
  g_autoptr (GError) error = NULL;
  void *outputs[1] = { out };

  g_assert_true (vulkan->klass->run (vulkan, plan, (const void *const *) c->inputs->pdata, NULL,
                                     outputs, &error));
  g_assert_no_error (error);
}

/* Two plans alive on one backend, run interleaved, each run repeated: outputs are the CPU's
 * and identical bit for bit from run to run, also after the other plan or other inputs ran. */
static void
test_plans (void)
{
  g_autoptr (Case) mm = small_matmul_case ();
  g_autoptr (Case) ln = small_layernorm_case ();
  g_autoptr (GError) error = NULL;
  gsize mm_n = case_output_elements (mm), ln_n = case_output_elements (ln);
  g_autofree gfloat *mm_first = g_new (gfloat, mm_n), *mm_again = g_new (gfloat, mm_n);
  g_autofree gfloat *ln_first = g_new (gfloat, ln_n), *ln_again = g_new (gfloat, ln_n);
  g_autofree gfloat *mm_cpu = g_new (gfloat, mm_n), *ln_cpu = g_new (gfloat, ln_n);
  g_autofree gfloat *saved_input = NULL;
  UmgPlan *mm_plan = vulkan->klass->plan (vulkan, mm->graph, &error);
  UmgPlan *ln_plan;

  g_assert_no_error (error);
  ln_plan = vulkan->klass->plan (vulkan, ln->graph, &error);
  g_assert_no_error (error);

  run_plan (mm_plan, mm, mm_first);
  run_plan (ln_plan, ln, ln_first);
  run_plan (mm_plan, mm, mm_again);
  g_assert_cmpmem (mm_first, mm_n * 4, mm_again, mm_n * 4);

  /* other inputs change the output; the original inputs bring it back exactly */
  saved_input = g_memdup2 (ln->inputs->pdata[0], 50 * 768 * 4);
  for (gsize i = 0; i < 50 * 768; i++)
    ((gfloat *) ln->inputs->pdata[0])[i] = uniform (-2, 2);
  run_plan (ln_plan, ln, ln_again);
  g_assert_cmpfloat (normalised_error (ln_again, ln_first, ln_n), >, 1e-3);
  memcpy (ln->inputs->pdata[0], saved_input, 50 * 768 * 4);
  run_plan (ln_plan, ln, ln_again);
  g_assert_cmpmem (ln_first, ln_n * 4, ln_again, ln_n * 4);

  g_assert_true (run_on (cpu, mm, mm_cpu, &error));
  g_assert_true (run_on (cpu, ln, ln_cpu, &error));
  g_assert_cmpfloat (normalised_error (mm_first, mm_cpu, mm_n), <, TOLERANCE_F32);
  g_assert_cmpfloat (normalised_error (ln_first, ln_cpu, ln_n), <, TOLERANCE_F32);

  vulkan->klass->free_plan (vulkan, mm_plan);
  vulkan->klass->free_plan (vulkan, ln_plan);
}

/* Both backends check one contract (umg_graph_validate): the same graph fails on both, with
 * the same message. */
static void
expect_plan_error (Case *c, const gchar *needle)
{
  g_autoptr (GError) vulkan_error = NULL, cpu_error = NULL;
  UmgPlan *vulkan_plan = vulkan->klass->plan (vulkan, c->graph, &vulkan_error);
  UmgPlan *cpu_plan = cpu->klass->plan (cpu, c->graph, &cpu_error);

  g_assert_null (vulkan_plan);
  g_assert_null (cpu_plan);
  g_assert_nonnull (vulkan_error);
  g_assert_nonnull (cpu_error);
  g_print ("  error: %s\n", vulkan_error->message);
  g_assert_nonnull (strstr (vulkan_error->message, needle));
  g_assert_cmpstr (vulkan_error->message, ==, cpu_error->message);
}

static void
test_plan_errors (void)
{
  g_autoptr (Case) missing = small_matmul_case ();
  g_autoptr (Case) outside = small_matmul_case ();
  g_autoptr (Case) empty = small_matmul_case ();
  g_autoptr (Case) f16_gamma = small_layernorm_case ();
  g_autoptr (Case) no_beta = small_layernorm_case ();

  g_array_index (missing->graph->ops, UmgOp, 0).src[1] = umg_ref_weight (4242);
  expect_plan_error (missing, "weight 4242");
  g_array_index (outside->graph->ops, UmgOp, 0).p.mm.m = 78;
  expect_plan_error (outside, "op 0 (matmul)");
  /* the backends used to disagree on these two: the Vulkan one skipped an empty product and
   * the CPU one ran a layer norm without beta */
  g_array_index (empty->graph->ops, UmgOp, 0).p.mm.m = 0;
  expect_plan_error (empty, "must all be >= 1");
  g_array_index (no_beta->graph->ops, UmgOp, 0).src[2] = UMG_REF_NONE;
  expect_plan_error (no_beta, "beta is required");
  /* a device may keep F16 matrices as F16: nothing but matmul B and gather tables may read
   * them, on any backend */
  g_array_index (f16_gamma->graph->ops, UmgOp, 0).src[1] = umg_ref_weight (W_768x768_F16);
  expect_plan_error (f16_gamma, "b_768x768_f16");
}

/* ---- timing (printed, never asserted) ---------------------------------------------------- */

static gdouble
time_runs (UmgBackend *backend, Case *c, gint runs, gfloat *out)
{
  g_autoptr (GError) error = NULL;
  UmgPlan *plan = backend->klass->plan (backend, c->graph, &error);
  void *outputs[1] = { out };
  gint64 start;

  g_assert_no_error (error);
  /* the first run pays for lazy work (pipelines, page faults) */
  g_assert_true (backend->klass->run (backend, plan, (const void *const *) c->inputs->pdata, NULL,
                                      outputs, &error));
  start = g_get_monotonic_time ();
  for (gint i = 0; i < runs; i++)
    g_assert_true (backend->klass->run (backend, plan, (const void *const *) c->inputs->pdata, NULL,
                                        outputs, &error));
  backend->klass->free_plan (backend, plan);
  return (g_get_monotonic_time () - start) / 1e6 / runs;
}

static void
test_matmul_speed (void)
{
  const gint m = 197, n = 3072, k = 768;
  g_autoptr (Case) c = case_new ();
  UmgOp op = { .type = UMG_OP_MATMUL };
  g_autofree gfloat *out = g_new (gfloat, (gsize) m * n);
  gdouble flops = 2.0 * m * n * k, vulkan_s, cpu_s;

  op.src[0] = case_input (c, (gsize) m * k, -1, 1, NULL);
  op.src[1] = umg_ref_weight (W_3072x768);
  op.src[2] = umg_ref_weight (W_BIAS_3072);
  op.dst = umg_graph_alloc (c->graph, (gsize) m * n);
  op.p.mm = (UmgMatmulParams){
    .m = m,
    .n = n,
    .k = k,
    .batch = 1,
    .lda = k,
    .ldb = k,
    .ldc = n,
    .trans_b = TRUE,
    .act = UMG_ACT_QUICK_GELU,
    .alpha = 1.0f,
  };
  umg_graph_push (c->graph, &op);
  umg_graph_add_output (c->graph, op.dst, (gsize) m * n);
  vulkan_s = time_runs (vulkan, c, 3, out);
  cpu_s = time_runs (cpu, c, 3, out);
  g_print ("  matmul %dx%dx%d (B^T f32, bias, quick_gelu): %s %.1f GFLOP/s (%.1f ms), "
           "%s %.1f GFLOP/s (%.1f ms)\n",
           m, n, k, vulkan->description, flops / vulkan_s / 1e9, vulkan_s * 1e3, cpu->description,
           flops / cpu_s / 1e9, cpu_s * 1e3);
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  rng = g_rand_new_with_seed (SEED);
  make_weights ();

  /* lavapipe is welcome here: the test is about the shaders, not the hardware */
  vulkan = umg_backend_vulkan_new (-1, TRUE, &error);
  g_assert_no_error (error);
  cpu = umg_backend_cpu_new (&error);
  g_assert_no_error (error);
  g_assert_true (vulkan->klass->set_weights (vulkan, weights, N_WEIGHTS, &error));
  g_assert_no_error (error);
  g_assert_true (cpu->klass->set_weights (cpu, weights, N_WEIGHTS, &error));
  g_assert_no_error (error);
  g_print ("# %s against %s, validation %s, seed %d\n", vulkan->description, cpu->description,
           g_strcmp0 (g_getenv ("UMGCLIP_VALIDATION"), "1") == 0 ? "on" : "off", SEED);

  g_test_add_func ("/backend-ops/description", test_description);
  g_test_add_func ("/backend-ops/matmul", test_matmul);
  g_test_add_func ("/backend-ops/attention", test_attention);
  g_test_add_func ("/backend-ops/dependencies", test_dependencies);
  g_test_add_func ("/backend-ops/layernorm", test_layernorm);
  g_test_add_func ("/backend-ops/softmax", test_softmax);
  g_test_add_func ("/backend-ops/gather", test_gather);
  g_test_add_func ("/backend-ops/im2col", test_im2col);
  g_test_add_func ("/backend-ops/add", test_add);
  g_test_add_func ("/backend-ops/copy", test_copy);
  g_test_add_func ("/backend-ops/roi_align", test_roi_align);
  g_test_add_func ("/backend-ops/l2norm", test_l2norm);
  g_test_add_func ("/backend-ops/preprocess", test_preprocess);
  g_test_add_func ("/backend-ops/activations", test_activations);
  g_test_add_func ("/backend-ops/plans", test_plans);
  g_test_add_func ("/backend-ops/plan-errors", test_plan_errors);
  g_test_add_func ("/backend-ops/bad-device-index", test_bad_device_index);
  g_test_add_func ("/backend-ops/matmul-speed", test_matmul_speed);
  status = g_test_run ();

  umg_backend_free (vulkan);
  umg_backend_free (cpu);
  for (guint w = 0; w < N_WEIGHTS; w++)
    umg_tensor_clear (&weights[w]);
  g_rand_free (rng);
  return status;
}
