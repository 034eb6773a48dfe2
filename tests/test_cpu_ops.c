/* Tests of the CPU backend, op by op: small cases checked against values worked out by hand,
 * and large awkward matmuls where the GEMM library's tiles must agree with the naive double loop.
 */
#include "backend.h"
#include "test_cpu_util.h"
#include "umgclip.h"

#include <math.h>
#include <string.h>

/* ---- helpers ----------------------------------------------------------------------------- */

static UmgBackend *
new_backend (gboolean naive, const UmgTensor *weights, guint n_weights)
{
  g_autoptr (GError) error = NULL;
  UmgBackend *backend;

  if (naive)
    g_setenv ("UMGCLIP_CPU_NAIVE", "1", TRUE);
  else
    g_unsetenv ("UMGCLIP_CPU_NAIVE");
  backend = umg_backend_cpu_new (&error);
  g_assert_no_error (error);
  g_assert_nonnull (backend);
  g_unsetenv ("UMGCLIP_CPU_NAIVE");
  g_assert_true (backend->klass->set_weights (backend, weights, n_weights, &error));
  g_assert_no_error (error);
  return backend;
}

static void
run_graph (UmgBackend *backend, const UmgGraph *graph, const void *const *inputs,
           void *const *outputs)
{
  g_autoptr (GError) error = NULL;
  UmgPlan *plan = backend->klass->plan (backend, graph, &error);

  g_assert_no_error (error);
  g_assert_nonnull (plan);
  g_assert_true (backend->klass->run (backend, plan, inputs, NULL, outputs, &error));
  g_assert_no_error (error);
  backend->klass->free_plan (backend, plan);
}

/* Plans the graph expecting failure; returns the message. */
static gchar *
plan_error (UmgBackend *backend, const UmgGraph *graph)
{
  g_autoptr (GError) error = NULL;
  UmgPlan *plan = backend->klass->plan (backend, graph, &error);

  g_assert_null (plan);
  g_assert_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT);
  return g_strdup (error->message);
}

static UmgTensor
weight_f32 (const gchar *name, const gfloat *values, gsize n)
{
  UmgTensor tensor = { .name = g_strdup (name),
                       .dtype = UMG_DTYPE_F32,
                       .n_dims = 1,
                       .shape = { n },
                       .n_elements = n,
                       .data = values };
  return tensor;
}

static UmgTensor
weight_f16 (const gchar *name, const gfloat *values, gsize n)
{
  guint16 *halves = g_new (guint16, n);
  UmgTensor tensor = { .name = g_strdup (name),
                       .dtype = UMG_DTYPE_F16,
                       .n_dims = 1,
                       .shape = { n },
                       .n_elements = n,
                       .data = halves,
                       .owned = halves };

  for (gsize i = 0; i < n; i++)
    halves[i] = umg_float_to_half (values[i]);
  return tensor;
}

static UmgRef
add_const (UmgGraph *graph, const gfloat *values, gsize n)
{
  UmgTensor *tensor = g_new0 (UmgTensor, 1);

  tensor->name = g_strdup ("test const");
  tensor->dtype = UMG_DTYPE_F32;
  tensor->n_dims = 1;
  tensor->shape[0] = n;
  tensor->n_elements = n;
  tensor->owned = g_memdup2 (values, n * sizeof (gfloat));
  tensor->data = tensor->owned;
  return umg_graph_add_const (graph, tensor);
}

static UmgRef
add_input (UmgGraph *graph, gsize n)
{
  UmgRef ref = umg_graph_alloc (graph, n);
  umg_graph_add_input (graph, ref, n);
  return ref;
}

static UmgRef
add_output (UmgGraph *graph, gsize n)
{
  UmgRef ref = umg_graph_alloc (graph, n);
  umg_graph_add_output (graph, ref, n);
  return ref;
}

static UmgOp
matmul_op (UmgRef a, UmgRef b, UmgRef bias, UmgRef c, gint m, gint n, gint k)
{
  UmgOp op = { .type = UMG_OP_MATMUL, .src = { a, b, bias }, .dst = c };

  op.p.mm = (UmgMatmulParams){ .m = m,
                               .n = n,
                               .k = k,
                               .batch = 1,
                               .lda = k,
                               .ldb = n,
                               .ldc = n,
                               .alpha = 1.0f,
                               .act = UMG_ACT_NONE };
  return op;
}

static void
assert_close (const gfloat *got, const gdouble *expected, gsize n, gdouble tolerance)
{
  for (gsize i = 0; i < n; i++)
    if (!(fabs (got[i] - expected[i]) <= tolerance)) /* NaN fails too */
      g_error ("element %" G_GSIZE_FORMAT ": got %.8g, expected %.8g", i, got[i], expected[i]);
}

static void
fill_random (GRand *rand, gfloat *values, gsize n)
{
  fill_random_range (rand, values, n, -1.0, 1.0);
}

/* ---- matmul ------------------------------------------------------------------------------ */

/* Two batches: A 2x3 with lda 4, stride 10; B 3x2 (or its transpose); C 2x2 with ldc 3,
 * stride 8, so the padding columns must stay untouched. alpha 0.5, bias [1, -1].
 *   A0 = [1 2 3; 4 5 6]     B0 = [1 0; 0 1; 1 1]      A0*B0 = [4 5; 10 11]
 *   A1 = [-1 3 2; .5 1 -2]  B1 = [2 1; 0 -1; 1 .5]    A1*B1 = [0 -3; -1 -1.5] */
static const gfloat batched_a[20] = {
  1, 2, 3, 99, 4, 5, 6, 99, 99, 99, -1, 3, 2, 99, 0.5f, 1, -2, 99, 99, 99,
};
static const gdouble batched_expected[2][2][3] = {
  { { 0.5 * 4 + 1, 0.5 * 5 - 1, 0 }, { 0.5 * 10 + 1, 0.5 * 11 - 1, 0 } },
  { { 0.5 * 0 + 1, 0.5 * -3 - 1, 0 }, { 0.5 * -1 + 1, 0.5 * -1.5 - 1, 0 } },
};

static void
check_batched_matmul (gboolean trans_b, gboolean naive)
{
  /* B as [k, n] rows 3 apart (one padding column), batches 9 apart; F16 storage. */
  static const gfloat b_plain[18] = {
    1, 0, 7, 0, 1, 7, 1, 1, 7, 2, 1, 7, 0, -1, 7, 1, 0.5f, 7,
  };
  /* B transposed, [n, k] rows 4 apart, batches 8 apart; F32 storage. */
  static const gfloat b_transposed[16] = {
    1, 0, 1, 7, 0, 1, 1, 7, 2, 0, 1, 7, 1, -1, 0.5f, 7,
  };
  static const gfloat bias[2] = { 1, -1 };
  UmgTensor weights[2] = {
    weight_f16 ("b_plain", b_plain, 18),
    weight_f32 ("b_transposed", b_transposed, 16),
  };
  UmgBackend *backend = new_backend (naive, weights, 2);
  g_autoptr (UmgGraph) graph = umg_graph_new ();
  UmgRef a = add_input (graph, 20);
  UmgRef c = add_output (graph, 16);
  UmgOp op
      = matmul_op (a, umg_ref_weight (trans_b ? 1 : 0), add_const (graph, bias, 2), c, 2, 2, 3);
  gfloat c_values[16];

  op.p.mm.batch = 2;
  op.p.mm.lda = 4;
  op.p.mm.stride_a = 10;
  op.p.mm.trans_b = trans_b;
  op.p.mm.ldb = trans_b ? 4 : 3;
  op.p.mm.stride_b = trans_b ? 8 : 9;
  op.p.mm.ldc = 3;
  op.p.mm.stride_c = 8;
  op.p.mm.alpha = 0.5f;
  umg_graph_push (graph, &op);
  run_graph (backend, graph, (const void *[]){ batched_a }, (void *[]){ c_values });

  for (gint batch = 0; batch < 2; batch++)
    {
      assert_close (c_values + batch * 8, &batched_expected[batch][0][0], 6, 1e-6);
      g_assert_cmpfloat (c_values[batch * 8 + 6], ==, 0.0f);
      g_assert_cmpfloat (c_values[batch * 8 + 7], ==, 0.0f);
    }
  umg_backend_free (backend);
  umg_tensor_clear (&weights[0]);
  umg_tensor_clear (&weights[1]);
}

static void
test_matmul_batched (void)
{
  for (gint naive = 0; naive < 2; naive++)
    {
      check_batched_matmul (FALSE, naive);
      check_batched_matmul (TRUE, naive);
    }
}

static void
test_matmul_activation (void)
{
  static const gfloat x[4] = { 1.0f, -0.5f, 2.0f, -3.0f };
  static const gfloat one = 1.0f;
  /* torch.nn.functional.gelu and x * sigmoid(1.702 x), in double */
  static const gdouble gelu[4] = {
    0.841344746068543,
    -0.15426876936299344,
    1.9544997361036416,
    -0.00404969409489031,
  };
  static const gdouble quick_gelu[4] = {
    0.8457957659328212,
    -0.1496115633936199,
    1.9356586231442083,
    -0.01807130970778597,
  };

  for (gint naive = 0; naive < 2; naive++)
    for (gint use_gelu = 0; use_gelu < 2; use_gelu++)
      {
        UmgBackend *backend = new_backend (naive, NULL, 0);
        g_autoptr (UmgGraph) graph = umg_graph_new ();
        UmgRef a = add_input (graph, 4);
        UmgRef c = add_output (graph, 4);
        UmgOp op = matmul_op (a, add_const (graph, &one, 1), UMG_REF_NONE, c, 4, 1, 1);
        gfloat out[4];

        op.p.mm.act = use_gelu ? UMG_ACT_GELU : UMG_ACT_QUICK_GELU;
        umg_graph_push (graph, &op);
        run_graph (backend, graph, (const void *[]){ x }, (void *[]){ out });
        assert_close (out, use_gelu ? gelu : quick_gelu, 4, 1e-6);
        umg_backend_free (backend);
      }
}

static gdouble
reference_quick_gelu (gdouble x)
{
  return x / (1.0 + exp (-1.702 * x));
}

/* C starts as [1 2; 3 4]; the op adds act(0.1 * A0*B0 + bias) = act([1.4 -0.5; 2 0.1]). */
static void
test_matmul_accumulate (void)
{
  static const gfloat a_values[6] = { 1, 2, 3, 4, 5, 6 };
  static const gfloat b_values[6] = { 1, 0, 0, 1, 1, 1 };
  static const gfloat bias[2] = { 1, -1 };
  static const gfloat c_start[4] = { 1, 2, 3, 4 };
  static const gdouble pre_activation[4] = { 1.4, -0.5, 2.0, 0.1 };

  for (gint naive = 0; naive < 2; naive++)
    for (gint activated = 0; activated < 2; activated++)
      {
        UmgTensor weight = weight_f32 ("b", b_values, 6);
        UmgBackend *backend = new_backend (naive, &weight, 1);
        g_autoptr (UmgGraph) graph = umg_graph_new ();
        UmgRef a = add_input (graph, 6);
        UmgRef c = add_input (graph, 4);
        UmgOp op = matmul_op (a, umg_ref_weight (0), add_const (graph, bias, 2), c, 2, 2, 3);
        gfloat out[4];
        gdouble expected[4];

        umg_graph_add_output (graph, c, 4);
        op.p.mm.alpha = 0.1f;
        op.p.mm.accumulate = TRUE;
        op.p.mm.act = activated ? UMG_ACT_QUICK_GELU : UMG_ACT_NONE;
        umg_graph_push (graph, &op);
        for (gint i = 0; i < 4; i++)
          expected[i]
              = c_start[i]
                + (activated ? reference_quick_gelu (pre_activation[i]) : pre_activation[i]);
        run_graph (backend, graph, (const void *[]){ a_values, c_start }, (void *[]){ out });
        assert_close (out, expected, 4, 1e-6);
        umg_backend_free (backend);
        umg_tensor_clear (&weight);
      }
}

typedef struct
{
  const gchar *what;
  gint m, n, k, batch;
  gint lda, ldb, ldc;
  gint64 stride_a, stride_b, stride_c;
  gboolean trans_b, accumulate, b_is_weight, b_is_f16;
  UmgActivation act;
  gfloat alpha;
  gboolean bias;
} MatmulCase;

static gsize
span (gint64 batch, gint64 batch_stride, gint64 rows, gint64 stride, gint64 cols)
{
  return (gsize) ((batch - 1) * batch_stride + (rows - 1) * stride + cols);
}

static void
check_blas_against_naive (const MatmulCase *test_case, GRand *rand)
{
  const MatmulCase *t = test_case;
  gsize a_elements = span (t->batch, t->stride_a, t->m, t->lda, t->k);
  gsize b_elements = t->trans_b ? span (t->batch, t->stride_b, t->n, t->ldb, t->k)
                                : span (t->batch, t->stride_b, t->k, t->ldb, t->n);
  gsize c_elements = span (t->batch, t->stride_c, t->m, t->ldc, t->n);
  g_autofree gfloat *a = g_new (gfloat, a_elements);
  g_autofree gfloat *b = g_new (gfloat, b_elements);
  g_autofree gfloat *bias = g_new (gfloat, t->n);
  g_autofree gfloat *c_start = g_new (gfloat, c_elements);
  g_autofree gfloat *c_blas = g_new (gfloat, c_elements);
  g_autofree gfloat *c_naive = g_new (gfloat, c_elements);
  UmgTensor weight;
  g_autoptr (UmgGraph) graph = umg_graph_new ();
  UmgRef a_ref = add_input (graph, a_elements);
  UmgRef b_ref = t->b_is_weight ? umg_ref_weight (0) : add_input (graph, b_elements);
  UmgRef c_ref = add_input (graph, c_elements);
  UmgOp op = matmul_op (a_ref, b_ref, UMG_REF_NONE, c_ref, t->m, t->n, t->k);
  gdouble error;

  fill_random (rand, a, a_elements);
  fill_random (rand, b, b_elements);
  fill_random (rand, bias, t->n);
  fill_random (rand, c_start, c_elements);
  weight = t->b_is_f16 ? weight_f16 ("b", b, b_elements) : weight_f32 ("b", b, b_elements);
  umg_graph_add_output (graph, c_ref, c_elements);
  if (t->bias)
    op.src[2] = add_const (graph, bias, t->n);
  op.p.mm = (UmgMatmulParams){
    .m = t->m,
    .n = t->n,
    .k = t->k,
    .batch = t->batch,
    .lda = t->lda,
    .ldb = t->ldb,
    .ldc = t->ldc,
    .stride_a = t->stride_a,
    .stride_b = t->stride_b,
    .stride_c = t->stride_c,
    .trans_b = t->trans_b,
    .accumulate = t->accumulate,
    .act = t->act,
    .alpha = t->alpha,
  };
  umg_graph_push (graph, &op);

  for (gint naive = 0; naive < 2; naive++)
    {
      UmgBackend *backend = new_backend (naive, &weight, 1);
      const void *inputs[3] = { a, t->b_is_weight ? c_start : b, c_start };
      run_graph (backend, graph, inputs, (void *[]){ naive ? c_naive : c_blas });
      umg_backend_free (backend);
    }
  error = relative_error (c_blas, c_naive, c_elements);
  g_test_message ("%s: relative error %.3g", t->what, error);
  if (error > 1e-5)
    g_error ("%s: BLAS and naive matmul differ, relative error %.3g", t->what, error);
  /* Sanity: the op wrote something other than what C held before. */
  g_assert_cmpfloat (relative_error (c_blas, c_start, c_elements), >, 0.01);
  umg_tensor_clear (&weight);
}

static void
test_matmul_blas_vs_naive (void)
{
  static const MatmulCase cases[] = {
    { "projection 197x768 * (64x768)^T + bias", 197, 64, 768, 1, 768, 768, 64, 0, 0, 0, TRUE, FALSE,
      TRUE, FALSE, UMG_ACT_NONE, 1.0f, TRUE },
    { "attention scores: 3 heads of 197x64 * (197x64)^T in rows of 192", 197, 197, 64, 3, 192, 192,
      197, 64, 64, 197 * 197, TRUE, FALSE, FALSE, FALSE, UMG_ACT_NONE, 0.125f, FALSE },
    { "text MLP 77x512 * f16 512x2048 + bias, gelu", 77, 2048, 512, 1, 512, 2048, 2048, 0, 0, 0,
      FALSE, FALSE, TRUE, TRUE, UMG_ACT_GELU, 1.0f, TRUE },
    { "3 batches of 50x50 * 50x64, odd strides, accumulate quick_gelu", 50, 64, 50, 3, 53, 67, 70,
      50 * 53 + 5, 50 * 67 + 3, 50 * 70 + 1, FALSE, TRUE, FALSE, FALSE, UMG_ACT_QUICK_GELU, 0.7f,
      TRUE },
    { "residual 197x64 * (768x64)^T accumulate + bias", 197, 768, 64, 1, 64, 64, 768, 0, 0, 0, TRUE,
      TRUE, TRUE, FALSE, UMG_ACT_NONE, 1.0f, TRUE },
    /* tiles of uneven width on one packed weight shared by both images; alpha with a bias */
    { "2 images of 197x100 * f16 (769x100)^T, alpha 0.5 + bias, accumulate gelu", 197, 769, 100, 2,
      100, 100, 769, 197 * 100, 0, 197 * 769, TRUE, TRUE, TRUE, TRUE, UMG_ACT_GELU, 0.5f, TRUE },
    { "one row: 1x768 * (512x768)^T, as the CLS projection", 1, 512, 768, 1, 768, 768, 512, 0, 0, 0,
      TRUE, FALSE, TRUE, FALSE, UMG_ACT_NONE, 1.0f, FALSE },
    { "many narrow rows: 300x16 * 16x40 + bias, quick_gelu", 300, 40, 16, 1, 16, 40, 40, 0, 0, 0,
      FALSE, FALSE, TRUE, FALSE, UMG_ACT_QUICK_GELU, 1.0f, TRUE },
  };
  g_autoptr (GRand) rand = g_rand_new_with_seed (1234);

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    check_blas_against_naive (&cases[i], rand);
}

/* ---- layernorm, softmax, l2norm ---------------------------------------------------------- */

static void
test_layernorm (void)
{
  /* rows 5 apart in, 6 apart out; row 1 = [-2 0 0 2]: mean 0, variance 2 */
  static const gfloat x[10] = { 1, 2, 3, 4, 99, -2, 0, 0, 2, 99 };
  static const gfloat gamma[4] = { 1, 2, 0.5f, -1 };
  static const gfloat beta[4] = { 0, 1, 0, 0.5f };
  const gdouble eps = 1e-5;
  UmgBackend *backend = new_backend (FALSE, NULL, 0);
  g_autoptr (UmgGraph) graph = umg_graph_new ();
  UmgRef in = add_input (graph, 10);
  UmgRef out = add_output (graph, 12);
  UmgOp op = { .type = UMG_OP_LAYERNORM,
               .dst = out,
               .src = { in, add_const (graph, gamma, 4), add_const (graph, beta, 4) } };
  gfloat result[12];
  gdouble expected[12] = { 0 };

  op.p.ln.rows = 2;
  op.p.ln.cols = 4;
  op.p.ln.src_stride = 5;
  op.p.ln.dst_stride = 6;
  op.p.ln.eps = (gfloat) eps;
  umg_graph_push (graph, &op);
  for (gint c = 0; c < 4; c++)
    {
      /* [1 2 3 4]: mean 2.5, population variance 1.25 */
      expected[c] = (x[c] - 2.5) / sqrt (1.25 + eps) * gamma[c] + beta[c];
      expected[6 + c] = x[5 + c] / sqrt (2.0 + eps) * gamma[c] + beta[c];
    }
  run_graph (backend, graph, (const void *[]){ x }, (void *[]){ result });
  assert_close (result, expected, 12, 1e-5);
  /* x - mean of [1 2 3 4] scaled by 1/sqrt(1.25): -1.3416408 for the first element */
  g_assert_cmpfloat_with_epsilon (result[0], -1.3416408 + 0.0, 1e-4);
  umg_backend_free (backend);
}

static void
test_softmax (void)
{
  /* softmax([1 2 3]) */
  static const gdouble s3[3] = { 0.09003057317038046, 0.24472847105479764, 0.6652409557748219 };
  /* softmax([1 2]) */
  static const gdouble s2[2] = { 0.2689414213699951, 0.7310585786300049 };
  /* batch 0: a plain row, a row that only makes sense stabilised, a row driven by the bias;
   * batch 1 repeats them. */
  static const gfloat x[18] = {
    1, 2, 3, 1000, 1001, 1002, 0, 0, 0, 1, 2, 3, 1000, 1001, 1002, 0, 0, 0,
  };
  static const gfloat bias[9] = { 0, 0, 0, 0, 0, 0, 1, 2, 3 };

  for (gint causal = 0; causal < 2; causal++)
    {
      UmgBackend *backend = new_backend (FALSE, NULL, 0);
      g_autoptr (UmgGraph) graph = umg_graph_new ();
      UmgRef values = add_input (graph, 18);
      UmgOp op = { .type = UMG_OP_SOFTMAX,
                   .dst = values,
                   .src = { add_const (graph, bias, 9), UMG_REF_NONE, UMG_REF_NONE } };
      gfloat out[18];

      umg_graph_add_output (graph, values, 18);
      op.p.softmax.batch = 2;
      op.p.softmax.rows = 3;
      op.p.softmax.cols = 3;
      op.p.softmax.causal = causal;
      umg_graph_push (graph, &op);
      run_graph (backend, graph, (const void *[]){ x }, (void *[]){ out });
      for (gint batch = 0; batch < 2; batch++)
        {
          const gfloat *rows = out + batch * 9;
          if (!causal)
            {
              for (gint r = 0; r < 3; r++)
                assert_close (rows + r * 3, s3, 3, 1e-6);
              continue;
            }
          /* row r sees columns 0..r; the rest are exactly zero */
          g_assert_cmpfloat (rows[0], ==, 1.0f);
          g_assert_cmpfloat (rows[1], ==, 0.0f);
          g_assert_cmpfloat (rows[2], ==, 0.0f);
          assert_close (rows + 3, s2, 2, 1e-6);
          g_assert_cmpfloat (rows[5], ==, 0.0f);
          assert_close (rows + 6, s3, 3, 1e-6);
        }
      umg_backend_free (backend);
    }
}

static void
test_l2norm (void)
{
  static const gfloat x[6] = { 3, 4, 0, 0, 0, 0 };
  static const gfloat y[6] = { 0, -2, 0, 1, 2, 2 };
  static const gdouble expected_x[6] = { 0.6, 0.8, 0, 0, 0, 0 };
  static const gdouble expected_y[6] = { 0, -1, 0, 1.0 / 3, 2.0 / 3, 2.0 / 3 };
  UmgBackend *backend = new_backend (FALSE, NULL, 0);
  g_autoptr (UmgGraph) graph = umg_graph_new ();
  UmgRef x_in = add_input (graph, 6);
  UmgRef x_out = add_output (graph, 6);
  UmgRef y_in = add_input (graph, 6);
  UmgOp op = { .type = UMG_OP_L2NORM, .src = { x_in, UMG_REF_NONE, UMG_REF_NONE }, .dst = x_out };
  gfloat x_result[6], y_result[6];

  op.p.l2.rows = 2;
  op.p.l2.cols = 3;
  umg_graph_push (graph, &op);
  /* the second in place, rows of 3: [0 -2 0] and [1 2 2] */
  op.src[0] = y_in;
  op.dst = y_in;
  umg_graph_add_output (graph, y_in, 6);
  umg_graph_push (graph, &op);
  run_graph (backend, graph, (const void *[]){ x, y }, (void *[]){ x_result, y_result });
  /* rows of 3: [3 4 0] -> [.6 .8 0]; the zero row stays zero instead of NaN */
  assert_close (x_result, expected_x, 6, 1e-7);
  assert_close (y_result, expected_y, 6, 1e-7);
  umg_backend_free (backend);
}

/* ---- gather, im2col, add, copy ----------------------------------------------------------- */

static void
test_gather (void)
{
  /* table rows r = [10r + .5, 10r + 1.5, 10r + 2.5] plus one padding column, exact in f16 */
  gfloat table[20];
  static const gint32 ids[4] = { 3, 0, 4, 3 };
  static const gint32 bad_ids[2] = { 1, 5 };
  UmgTensor weight;
  UmgBackend *backend;
  g_autoptr (UmgGraph) graph = umg_graph_new ();
  g_autoptr (UmgGraph) bad_graph = umg_graph_new ();
  UmgRef id_ref = add_input (graph, 4);
  UmgRef out = add_output (graph, 12);
  UmgOp op
      = { .type = UMG_OP_GATHER, .src = { umg_ref_weight (0), id_ref, UMG_REF_NONE }, .dst = out };
  gfloat result[12];
  gdouble expected[12];
  g_autoptr (GError) error = NULL;
  UmgPlan *plan;

  for (gint r = 0; r < 5; r++)
    for (gint c = 0; c < 4; c++)
      table[r * 4 + c] = c < 3 ? 10 * r + c + 0.5f : -7.0f;
  weight = weight_f16 ("token_embedding", table, 20);
  backend = new_backend (FALSE, &weight, 1);
  op.p.gather.rows = 4;
  op.p.gather.cols = 3;
  op.p.gather.src_stride = 4;
  umg_graph_push (graph, &op);
  for (gint r = 0; r < 4; r++)
    for (gint c = 0; c < 3; c++)
      expected[r * 3 + c] = 10 * ids[r] + c + 0.5;
  run_graph (backend, graph, (const void *[]){ ids }, (void *[]){ result });
  assert_close (result, expected, 12, 0.0);

  /* an id past the table's 5 rows fails the run, naming the op */
  id_ref = add_input (bad_graph, 2);
  op.src[1] = id_ref;
  op.dst = add_output (bad_graph, 6);
  op.p.gather.rows = 2;
  umg_graph_push (bad_graph, &op);
  plan = backend->klass->plan (backend, bad_graph, &error);
  g_assert_no_error (error);
  g_assert_false (backend->klass->run (backend, plan, (const void *[]){ bad_ids }, NULL,
                                       (void *[]){ result }, &error));
  g_assert_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "gather"));
  g_assert_nonnull (strstr (error->message, "id 5"));
  backend->klass->free_plan (backend, plan);
  umg_backend_free (backend);
  umg_tensor_clear (&weight);
}

static void
test_im2col (void)
{
  /* 2 channels of 4 x 6, value 100 channel + 10 y + x; patch 2 gives a 2 x 3 grid of rows
   * of 2 * 2 * 2 = 8 columns ordered (channel, ky, kx) */
  gfloat image[48];
  gfloat patches[48];
  UmgBackend *backend = new_backend (FALSE, NULL, 0);
  g_autoptr (UmgGraph) graph = umg_graph_new ();
  UmgRef in = add_input (graph, 48);
  UmgRef out = add_output (graph, 48);
  UmgOp op = { .type = UMG_OP_IM2COL, .src = { in, UMG_REF_NONE, UMG_REF_NONE }, .dst = out };
  static const gfloat patch_4[8] = { 22, 23, 32, 33, 122, 123, 132, 133 };

  for (gint channel = 0; channel < 2; channel++)
    for (gint y = 0; y < 4; y++)
      for (gint x = 0; x < 6; x++)
        image[(channel * 4 + y) * 6 + x] = 100 * channel + 10 * y + x;
  op.p.im2col.channels = 2;
  op.p.im2col.height = 4;
  op.p.im2col.width = 6;
  op.p.im2col.patch = 2;
  op.p.im2col.grid_h = 2;
  op.p.im2col.grid_w = 3;
  umg_graph_push (graph, &op);
  run_graph (backend, graph, (const void *[]){ image }, (void *[]){ patches });

  /* patch 4 is grid cell (1, 1): pixels y 2..3, x 2..3 */
  for (gint i = 0; i < 8; i++)
    g_assert_cmpfloat (patches[4 * 8 + i], ==, patch_4[i]);
  for (gint gy = 0; gy < 2; gy++)
    for (gint gx = 0; gx < 3; gx++)
      for (gint channel = 0; channel < 2; channel++)
        for (gint ky = 0; ky < 2; ky++)
          for (gint kx = 0; kx < 2; kx++)
            g_assert_cmpfloat (patches[(gy * 3 + gx) * 8 + channel * 4 + ky * 2 + kx], ==,
                               100 * channel + 10 * (2 * gy + ky) + 2 * gx + kx);
  umg_backend_free (backend);
}

static void
test_add_copy (void)
{
  static const gfloat a[6] = { 1, 2, 3, 4, 5, 6 };
  static const gfloat b[3] = { 10, 20, 30 };
  static const gfloat rows[8] = { 1, 2, 3, -1, 4, 5, 6, -1 };
  static const gdouble sum[6] = { 11, 22, 33, 14, 25, 36 };
  static const gdouble twice[6] = { 21, 42, 63, 24, 45, 66 };
  static const gdouble copied[10] = { 1, 2, 3, 0, 0, 4, 5, 6, 0, 0 };
  UmgBackend *backend = new_backend (FALSE, NULL, 0);
  g_autoptr (UmgGraph) graph = umg_graph_new ();
  UmgRef a_ref = add_input (graph, 6);
  UmgRef b_ref = add_const (graph, b, 3);
  UmgRef sum_ref = add_output (graph, 6);
  UmgRef rows_ref = add_input (graph, 8);
  UmgRef copy_ref = add_output (graph, 10);
  UmgOp add = { .type = UMG_OP_ADD, .src = { a_ref, b_ref, UMG_REF_NONE }, .dst = sum_ref };
  UmgOp copy
      = { .type = UMG_OP_COPY, .src = { rows_ref, UMG_REF_NONE, UMG_REF_NONE }, .dst = copy_ref };
  gfloat sum_result[6], in_place_result[6], copy_result[10];

  add.p.add.n = 6;
  add.p.add.n_b = 3;
  umg_graph_push (graph, &add);
  /* in place: a += b, twice */
  add.dst = a_ref;
  umg_graph_push (graph, &add);
  umg_graph_push (graph, &add);
  umg_graph_add_output (graph, a_ref, 6);
  copy.p.copy.rows = 2;
  copy.p.copy.cols = 3;
  copy.p.copy.src_stride = 4;
  copy.p.copy.dst_stride = 5;
  umg_graph_push (graph, &copy);
  run_graph (backend, graph, (const void *[]){ a, rows },
             (void *[]){ sum_result, copy_result, in_place_result });
  assert_close (sum_result, sum, 6, 0.0);
  assert_close (in_place_result, twice, 6, 0.0);
  assert_close (copy_result, copied, 10, 0.0);
  umg_backend_free (backend);
}

/* ---- roi_align ----------------------------------------------------------------------------- */

/* Map 3 x 4 x 2: channel 0 = 10 r + c + 1 (bilinear, so samples are exact), channel 1 =
 * r^2 + c^2 (samples must use the right corner weights). Boxes are (x1, y1, x2, y2) in cells. */
static void
test_roi_align (void)
{
  static const gfloat boxes_one_bin[12] = {
    /* inside: samples x 0.75, 1.75; y 0.625, 1.375 */
    0.25f,
    0.25f,
    2.25f,
    1.75f,
    /* past the corner: samples x 4 (on the edge: clamped to 3), 6 (> 4: zero); y 2 and 3
     * (on the edge: clamped to 2) -- (2, 3) in 2 of 4 samples */
    3.0f,
    1.5f,
    7.0f,
    3.5f,
    /* in the last column: samples x 3.25, 3.75 (clamped to 3); y 0.25, 0.75 */
    3.0f,
    0.0f,
    4.0f,
    1.0f,
  };
  static const gfloat box_four_bins[4] = {
    /* 2 x 2 bins of one sample: x -3 (< -1: zero), -1 (on the edge: clamped to 0); y 0.5, 1.5 */
    -4.0f,
    0.0f,
    0.0f,
    2.0f,
  };
  static const gdouble expected_one_bin[6] = {
    /* channel 0: 10 * mean y + mean x + 1; channel 1: mean of r^2 at y (0.625 and
     * 1 + 0.375 * 3) + mean of c^2 at x (0.75 and 1 + 0.75 * 3) */
    10 * 1.0 + 1.25 + 1,    (0.625 + 2.125) / 2 + (0.75 + 3.25) / 2,
    (10 * 2 + 3 + 1) / 2.0, (4 + 9) / 2.0,
    10 * 0.5 + 3 + 1,       (0.25 + 0.75) / 2 + 9,
  };
  static const gdouble expected_four_bins[2] = {
    /* bins at x = 0 and y 0.5, 1.5: channel 0 = 6, 16; channel 1 = 0.5, 2.5; two zero bins */
    (6 + 16) / 4.0,
    (0.5 + 2.5) / 4.0,
  };
  gfloat map[24];
  gfloat one_bin[6], four_bins[2];
  UmgBackend *backend = new_backend (FALSE, NULL, 0);
  g_autoptr (UmgGraph) graph = umg_graph_new ();
  UmgRef map_ref = add_input (graph, 24);
  UmgRef boxes_ref = add_input (graph, 12);
  UmgRef box_ref = add_input (graph, 4);
  UmgOp op = { .type = UMG_OP_ROI_ALIGN,
               .src = { map_ref, boxes_ref, UMG_REF_NONE },
               .dst = add_output (graph, 6) };

  for (gint r = 0; r < 3; r++)
    for (gint c = 0; c < 4; c++)
      {
        map[(r * 4 + c) * 2] = 10 * r + c + 1;
        map[(r * 4 + c) * 2 + 1] = r * r + c * c;
      }
  op.p.roi.grid_h = 3;
  op.p.roi.grid_w = 4;
  op.p.roi.cols = 2;
  op.p.roi.n_boxes = 3;
  op.p.roi.output_size = 1;
  op.p.roi.sampling = 2;
  umg_graph_push (graph, &op);
  op.src[1] = box_ref;
  op.dst = add_output (graph, 2);
  op.p.roi.n_boxes = 1;
  op.p.roi.output_size = 2;
  op.p.roi.sampling = 1;
  umg_graph_push (graph, &op);
  run_graph (backend, graph, (const void *[]){ map, boxes_one_bin, box_four_bins },
             (void *[]){ one_bin, four_bins });
  assert_close (one_bin, expected_one_bin, 6, 1e-5);
  assert_close (four_bins, expected_four_bins, 2, 1e-5);
  umg_backend_free (backend);
}

/* ---- plan-time validation ------------------------------------------------------------------ */

static void
test_validation (void)
{
  static const gfloat b_values[4] = { 1, 2, 3, 4 };
  UmgTensor weight = weight_f32 ("small_weight", b_values, 4);
  UmgBackend *backend = new_backend (FALSE, &weight, 1);

  {
    /* B needs 3 x 2 = 6 elements, the weight has 4; the op is second in the list */
    g_autoptr (UmgGraph) graph = umg_graph_new ();
    UmgRef a = umg_graph_alloc (graph, 6);
    UmgRef c = umg_graph_alloc (graph, 4);
    UmgOp copy = { .type = UMG_OP_COPY, .src = { a, UMG_REF_NONE, UMG_REF_NONE }, .dst = c };
    UmgOp mm = matmul_op (a, umg_ref_weight (0), UMG_REF_NONE, c, 2, 2, 3);
    g_autofree gchar *message = NULL;

    copy.p.copy.rows = 1;
    copy.p.copy.cols = 4;
    copy.p.copy.src_stride = 4;
    copy.p.copy.dst_stride = 4;
    umg_graph_push (graph, &copy);
    umg_graph_push (graph, &mm);
    message = plan_error (backend, graph);
    g_assert_nonnull (strstr (message, "op 1 (matmul)"));
    g_assert_nonnull (strstr (message, "'small_weight'"));
  }
  {
    /* a weight that does not exist */
    g_autoptr (UmgGraph) graph = umg_graph_new ();
    UmgRef a = umg_graph_alloc (graph, 6);
    UmgRef c = umg_graph_alloc (graph, 4);
    UmgOp mm = matmul_op (a, umg_ref_weight (7), UMG_REF_NONE, c, 2, 2, 3);
    g_autofree gchar *message = NULL;

    umg_graph_push (graph, &mm);
    message = plan_error (backend, graph);
    g_assert_nonnull (strstr (message, "matmul"));
    g_assert_nonnull (strstr (message, "weight 7"));
  }
  {
    /* layernorm rows running past the end of the arena */
    g_autoptr (UmgGraph) graph = umg_graph_new ();
    UmgRef x = umg_graph_alloc (graph, 16);
    UmgOp ln = { .type = UMG_OP_LAYERNORM, .src = { x, UMG_REF_NONE, UMG_REF_NONE }, .dst = x };
    g_autofree gchar *message = NULL;

    ln.p.ln.rows = 3;
    ln.p.ln.cols = 8;
    ln.p.ln.src_stride = 8;
    ln.p.ln.dst_stride = 8;
    ln.p.ln.eps = 1e-5f;
    umg_graph_push (graph, &ln);
    message = plan_error (backend, graph);
    g_assert_nonnull (strstr (message, "op 0 (layernorm)"));
    g_assert_nonnull (strstr (message, "arena"));
  }
  {
    /* writing into a weight */
    g_autoptr (UmgGraph) graph = umg_graph_new ();
    UmgRef x = umg_graph_alloc (graph, 4);
    UmgOp copy = { .type = UMG_OP_COPY,
                   .src = { x, UMG_REF_NONE, UMG_REF_NONE },
                   .dst = umg_ref_weight (0) };
    g_autofree gchar *message = NULL;

    copy.p.copy.rows = 1;
    copy.p.copy.cols = 4;
    copy.p.copy.src_stride = 4;
    copy.p.copy.dst_stride = 4;
    umg_graph_push (graph, &copy);
    message = plan_error (backend, graph);
    g_assert_nonnull (strstr (message, "copy"));
  }
  {
    /* an out-of-range constant index on a softmax bias */
    g_autoptr (UmgGraph) graph = umg_graph_new ();
    UmgRef x = umg_graph_alloc (graph, 4);
    UmgOp softmax = { .type = UMG_OP_SOFTMAX,
                      .dst = x,
                      .src = { { UMG_STORAGE_CONST, 2, 0 }, UMG_REF_NONE, UMG_REF_NONE } };
    g_autofree gchar *message = NULL;

    softmax.p.softmax.batch = 1;
    softmax.p.softmax.rows = 2;
    softmax.p.softmax.cols = 2;
    umg_graph_push (graph, &softmax);
    message = plan_error (backend, graph);
    g_assert_nonnull (strstr (message, "softmax"));
    g_assert_nonnull (strstr (message, "const 2"));
  }
  umg_backend_free (backend);
  umg_tensor_clear (&weight);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cpu/matmul/batched", test_matmul_batched);
  g_test_add_func ("/cpu/matmul/activation", test_matmul_activation);
  g_test_add_func ("/cpu/matmul/accumulate", test_matmul_accumulate);
  g_test_add_func ("/cpu/matmul/blas-vs-naive", test_matmul_blas_vs_naive);
  g_test_add_func ("/cpu/layernorm", test_layernorm);
  g_test_add_func ("/cpu/softmax", test_softmax);
  g_test_add_func ("/cpu/l2norm", test_l2norm);
  g_test_add_func ("/cpu/gather", test_gather);
  g_test_add_func ("/cpu/im2col", test_im2col);
  g_test_add_func ("/cpu/add-copy", test_add_copy);
  g_test_add_func ("/cpu/roi_align", test_roi_align);
  g_test_add_func ("/cpu/validation", test_validation);
  return g_test_run ();
}
