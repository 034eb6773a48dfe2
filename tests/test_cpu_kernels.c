/* The CPU backend's fast paths against their naive twins: every vector row kernel (AVX2,
 * AVX-512 where the CPU has them) against the plain-C reference on awkward sizes; the fused
 * attention and the tiled oneDNN products against the reference backend on transformer blocks
 * of 197, 77 and 50 tokens; and the same blocks at several thread counts, which may change
 * results by rounding only (1e-5 relative), while a batched pass equals single passes exactly. */
#include "backend.h"
#include "cpu_fusion.h"
#include "cpu_kernels.h"
#include "test_cpu_util.h"
#include "transformer.h"

#include <math.h>
#include <string.h>

/* Element by element: |got - expected| <= relative |expected| + absolute. */
static void
assert_elements_close (const gchar *what, const gfloat *got, const gfloat *expected, gsize n,
                       gdouble relative, gdouble absolute)
{
  for (gsize i = 0; i < n; i++)
    if (!(fabs ((gdouble) got[i] - expected[i]) <= relative * fabs (expected[i]) + absolute))
      g_error ("%s: element %" G_GSIZE_FORMAT ": got %.9g, expected %.9g", what, i, got[i],
               expected[i]);
}

/* The vector kernel sets this CPU runs, with the reference as the last entry. */
static GPtrArray *
fast_kernels (void)
{
  static const gchar *const isas[] = { "avx2", "avx512" };
  GPtrArray *found = g_ptr_array_new ();

  for (guint i = 0; i < G_N_ELEMENTS (isas); i++)
    {
      const UmgCpuKernels *kernels = umg_cpu_kernels_for_isa (isas[i]);
      if (kernels != NULL)
        g_ptr_array_add (found, (gpointer) kernels);
      else
        g_test_message ("%s: not on this CPU, not tested", isas[i]);
    }
  return found;
}

static const gint awkward_widths[] = { 1, 7, 15, 16, 17, 50, 64, 77, 197, 512, 768, 769, 3072 };

/* ---- row kernels ------------------------------------------------------------------------- */

static void
test_layernorm (void)
{
  const UmgCpuKernels *reference = umg_cpu_kernels_reference ();
  g_autoptr (GPtrArray) kernels = fast_kernels ();
  g_autoptr (GRand) rand = g_rand_new_with_seed (11);

  for (guint k = 0; k < kernels->len; k++)
    for (guint w = 0; w < G_N_ELEMENTS (awkward_widths); w++)
      for (gint affine = 0; affine < 2; affine++)
        {
          const UmgCpuKernels *fast = g_ptr_array_index (kernels, k);
          gint cols = awkward_widths[w];
          g_autofree gfloat *x = g_new (gfloat, cols), *gamma = g_new (gfloat, cols);
          g_autofree gfloat *beta = g_new (gfloat, cols), *expected = g_new (gfloat, cols);
          g_autofree gfloat *got = g_new (gfloat, cols);
          g_autofree gchar *what = g_strdup_printf ("%s layernorm of %d%s", fast->name, cols,
                                                    affine ? " with gamma, beta" : "");
          /* an offset mean, as residual streams have, tests the variance's cancellation */
          fill_random_range (rand, x, cols, 30.0, 34.0);
          fill_random_range (rand, gamma, cols, 0.5, 1.5);
          fill_random_range (rand, beta, cols, -1.0, 1.0);
          reference->layernorm (x, affine ? gamma : NULL, affine ? beta : NULL, cols, 1e-5f,
                                expected);
          fast->layernorm (x, affine ? gamma : NULL, affine ? beta : NULL, cols, 1e-5f, got);
          assert_elements_close (what, got, expected, cols, 1e-5, 2e-5);
          /* in place, as the vision tower's ln_pre runs */
          fast->layernorm (x, affine ? gamma : NULL, affine ? beta : NULL, cols, 1e-5f, x);
          g_assert_cmpmem (x, cols * sizeof (gfloat), got, cols * sizeof (gfloat));
        }
}

static void
test_softmax (void)
{
  const UmgCpuKernels *reference = umg_cpu_kernels_reference ();
  g_autoptr (GPtrArray) kernels = fast_kernels ();
  g_autoptr (GRand) rand = g_rand_new_with_seed (12);

  for (guint k = 0; k < kernels->len; k++)
    for (guint w = 0; w < G_N_ELEMENTS (awkward_widths); w++)
      for (gint variant = 0; variant < 4; variant++)
        {
          const UmgCpuKernels *fast = g_ptr_array_index (kernels, k);
          gint cols = awkward_widths[w];
          /* 0: plain; 1: with a bias; 2: causal, a third visible; 3: masked out by -inf */
          gint visible = variant == 2 ? MAX (cols / 3, 1) : cols;
          g_autofree gfloat *row = g_new (gfloat, cols), *bias = g_new (gfloat, cols);
          g_autofree gfloat *expected = g_new (gfloat, cols), *got = g_new (gfloat, cols);
          g_autofree gchar *what
              = g_strdup_printf ("%s softmax of %d, variant %d", fast->name, cols, variant);
          fill_random_range (rand, row, cols, -30.0, 30.0);
          fill_random_range (rand, bias, cols, -2.0, 2.0);
          if (variant == 3)
            for (gint c = 0; c < cols; c++)
              bias[c] = -INFINITY;
          memcpy (expected, row, cols * sizeof (gfloat));
          memcpy (got, row, cols * sizeof (gfloat));
          reference->softmax (expected, variant % 2 ? bias : NULL, cols, visible);
          fast->softmax (got, variant % 2 ? bias : NULL, cols, visible);
          assert_elements_close (what, got, expected, cols, 1e-5, 1e-12);
        }
}

static void
test_epilogue (void)
{
  const UmgCpuKernels *reference = umg_cpu_kernels_reference ();
  g_autoptr (GPtrArray) kernels = fast_kernels ();
  g_autoptr (GRand) rand = g_rand_new_with_seed (13);
  static const UmgActivation acts[] = { UMG_ACT_NONE, UMG_ACT_QUICK_GELU, UMG_ACT_GELU };

  for (guint k = 0; k < kernels->len; k++)
    for (guint w = 0; w < G_N_ELEMENTS (awkward_widths); w++)
      for (guint a = 0; a < G_N_ELEMENTS (acts); a++)
        for (gint variant = 0; variant < 4; variant++)
          {
            const UmgCpuKernels *fast = g_ptr_array_index (kernels, k);
            gint n = awkward_widths[w];
            gboolean bias_set = variant & 1, accumulate = variant & 2;
            g_autofree gfloat *product = g_new (gfloat, n), *bias = g_new (gfloat, n);
            g_autofree gfloat *start = g_new (gfloat, n), *expected = g_new (gfloat, n);
            g_autofree gfloat *got = g_new (gfloat, n);
            g_autofree gchar *what = g_strdup_printf ("%s epilogue of %d, act %d, variant %d",
                                                      fast->name, n, acts[a], variant);
            /* the whole range, far tails included (exp over- and underflow) */
            fill_random_range (rand, product, n, -12.0, 12.0);
            product[0] = n % 2 ? -120.0f : 95.0f;
            fill_random_range (rand, bias, n, -1.0, 1.0);
            fill_random_range (rand, start, n, -1.0, 1.0);
            memcpy (expected, start, n * sizeof (gfloat));
            memcpy (got, start, n * sizeof (gfloat));
            reference->epilogue (expected, product, bias_set ? bias : NULL, n, acts[a], accumulate);
            fast->epilogue (got, product, bias_set ? bias : NULL, n, acts[a], accumulate);
            /* erfc's tail is within 2e-6 relative (see matmul.comp) */
            assert_elements_close (what, got, expected, n, 4e-6, 1e-7);
          }
}

/* ---- transformer blocks through the whole backend ---------------------------------------- */

typedef struct
{
  const gchar *what;
  gint width, heads, mlp, n_seq, seq_len;
  gboolean separate, causal;
  UmgActivation act;
} BlockCase;

typedef struct
{
  UmgTower tower;
  UmgLayerWeights layer;
  UmgTensor weights[12];
} Block;

static void
block_init (Block *block, const BlockCase *t, GRand *rand)
{
  const gsize w = t->width, mlp = t->mlp;
  const gsize sizes[12] = { w, w, 3 * w * w, 3 * w, w * w, w, w, w, mlp * w, mlp, w * mlp, w };
  guint *indices = (guint *) &block->layer;

  block->tower = (UmgTower){ t->width, 1, t->heads, t->mlp, t->act, 1e-5f, &block->layer };
  for (guint i = 0; i < 12; i++)
    {
      gfloat *values = g_new (gfloat, sizes[i]);
      gboolean norm_gain = i == 0 || i == 6;
      /* matrices scaled as trained ones are, so that activations stay near 1 */
      gdouble scale = sizes[i] > mlp ? 1.0 / sqrt ((gdouble) (i == 10 ? mlp : w)) : 0.5;
      fill_random_range (rand, values, sizes[i], norm_gain ? 0.5 : -scale, norm_gain ? 1.5 : scale);
      block->weights[i] = (UmgTensor){ .name = g_strdup_printf ("block weight %u", i),
                                       .dtype = UMG_DTYPE_F32,
                                       .n_dims = 1,
                                       .shape = { sizes[i] },
                                       .n_elements = sizes[i],
                                       .data = values,
                                       .owned = values };
      indices[i] = i;
    }
}

static void
block_clear (Block *block)
{
  for (guint i = 0; i < 12; i++)
    umg_tensor_clear (&block->weights[i]);
}

/* One pre-LN block on x, as the towers push it; x is the graph's input and output. */
static UmgGraph *
block_graph (const Block *block, const BlockCase *t, gint n_seq)
{
  UmgGraph *graph = umg_graph_new ();
  UmgBlockBuffers buffers;
  gsize x_elements = (gsize) n_seq * t->seq_len * t->width;

  umg_block_buffers_alloc (graph, &block->tower, n_seq, t->seq_len, t->separate, &buffers);
  umg_graph_add_input (graph, buffers.x, x_elements);
  umg_push_block (graph, &block->tower, &block->layer, &buffers, t->causal);
  umg_graph_add_output (graph, buffers.x, x_elements);
  return graph;
}

/* out = the block on x, by a CPU backend made with threads threads (0: the default), naive
 * (UMGCLIP_CPU_NAIVE) and the GEMM library gemm (UMGCLIP_CPU_GEMM, NULL: the default). */
static void
run_block (const Block *block, const UmgGraph *graph, guint threads, gboolean naive,
           const gchar *gemm, const gfloat *x, gfloat *out)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *setting = g_strdup_printf ("%u", threads);
  UmgBackend *backend;
  UmgPlan *plan;

  if (threads > 0)
    g_setenv ("UMGCLIP_THREADS", setting, TRUE);
  if (naive)
    g_setenv ("UMGCLIP_CPU_NAIVE", "1", TRUE);
  if (gemm != NULL)
    g_setenv ("UMGCLIP_CPU_GEMM", gemm, TRUE);
  backend = umg_backend_cpu_new (&error);
  g_unsetenv ("UMGCLIP_THREADS");
  g_unsetenv ("UMGCLIP_CPU_NAIVE");
  g_unsetenv ("UMGCLIP_CPU_GEMM");
  g_assert_no_error (error);
  g_assert_true (backend->klass->set_weights (backend, block->weights, 12, &error));
  plan = backend->klass->plan (backend, graph, &error);
  g_assert_no_error (error);
  g_assert_true (
      backend->klass->run (backend, plan, (const void *[]){ x }, NULL, (void *[]){ out }, &error));
  g_assert_no_error (error);
  backend->klass->free_plan (backend, plan);
  umg_backend_free (backend);
}

static const BlockCase block_cases[] = {
  { "vision, ViT-B width, 197 tokens, 2 images", 768, 12, 3072, 2, 197, TRUE, FALSE,
    UMG_ACT_QUICK_GELU },
  { "text, 77 tokens, 3 stacked causal sequences", 512, 8, 2048, 3, 77, FALSE, TRUE, UMG_ACT_GELU },
  { "odd widths, 50 tokens, 2 images", 200, 5, 520, 2, 50, TRUE, FALSE, UMG_ACT_QUICK_GELU },
};

/* The graph's attention triples are the pattern the backend fuses. */
static void
assert_attention_fused (const UmgGraph *graph, gint n_attention)
{
  gint found = 0;
  for (guint i = 0; i < graph->ops->len; i++)
    found += umg_cpu_is_attention (graph, i);
  g_assert_cmpint (found, ==, n_attention);
}

static void
test_blocks_against_naive (void)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (14);

  for (guint c = 0; c < G_N_ELEMENTS (block_cases); c++)
    {
      const BlockCase *t = &block_cases[c];
      gsize n = (gsize) t->n_seq * t->seq_len * t->width;
      g_autofree gfloat *x = g_new (gfloat, n), *fast = g_new (gfloat, n);
      g_autofree gfloat *naive = g_new (gfloat, n);
      g_autoptr (UmgGraph) graph = NULL;
      static const gchar *const libraries[] = { "onednn", "openblas" };
      Block block;

      block_init (&block, t, rand);
      graph = block_graph (&block, t, t->n_seq);
      assert_attention_fused (graph, t->n_seq);
      fill_random_range (rand, x, n, -1.0, 1.0);
      run_block (&block, graph, 0, TRUE, NULL, x, naive);
      /* both GEMM paths (a build without oneDNN runs OpenBLAS twice) */
      for (guint l = 0; l < G_N_ELEMENTS (libraries); l++)
        {
          gdouble error;
          run_block (&block, graph, 0, FALSE, libraries[l], x, fast);
          error = relative_error (fast, naive, n);
          g_test_message ("%s, %s: fast against naive, relative error %.3g", t->what, libraries[l],
                          error);
          if (!(error <= 1e-5))
            g_error ("%s, %s: fast and naive blocks differ, relative error %.3g", t->what,
                     libraries[l], error);
          g_assert_cmpfloat (relative_error (fast, x, n), >, 0.01);
        }
      block_clear (&block);
    }
}

static void
test_thread_counts (void)
{
  static const guint thread_counts[] = { 1, 2, 3, 4, 7 };
  g_autoptr (GRand) rand = g_rand_new_with_seed (15);

  for (guint c = 0; c < G_N_ELEMENTS (block_cases); c++)
    {
      const BlockCase *t = &block_cases[c];
      const gsize per_seq = (gsize) t->seq_len * t->width, n = t->n_seq * per_seq;
      g_autofree gfloat *x = g_new (gfloat, n), *one = g_new (gfloat, n);
      g_autofree gfloat *got = g_new (gfloat, n), *single = g_new (gfloat, per_seq);
      g_autoptr (UmgGraph) graph = NULL, single_graph = NULL;
      Block block;

      block_init (&block, t, rand);
      graph = block_graph (&block, t, t->n_seq);
      single_graph = block_graph (&block, t, 1);
      fill_random_range (rand, x, n, -1.0, 1.0);
      run_block (&block, graph, 1, FALSE, NULL, x, one);
      for (guint i = 1; i < G_N_ELEMENTS (thread_counts); i++)
        {
          guint threads = thread_counts[i];
          gdouble error;
          run_block (&block, graph, threads, FALSE, NULL, x, got);
          error = relative_error (got, one, n);
          g_test_message ("%s: %u threads against 1, relative error %.3g", t->what, threads, error);
          if (!(error <= 1e-5))
            g_error ("%s: %u threads differ from 1 by %.3g", t->what, threads, error);
          /* within one thread count, an image's numbers do not depend on its neighbours */
          if (t->separate)
            for (gint s = 0; s < t->n_seq; s++)
              {
                run_block (&block, single_graph, threads, FALSE, NULL, x + s * per_seq, single);
                g_assert_cmpmem (got + s * per_seq, per_seq * sizeof (gfloat), single,
                                 per_seq * sizeof (gfloat));
              }
        }
      block_clear (&block);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cpu-kernels/layernorm", test_layernorm);
  g_test_add_func ("/cpu-kernels/softmax", test_softmax);
  g_test_add_func ("/cpu-kernels/epilogue", test_epilogue);
  g_test_add_func ("/cpu-kernels/blocks-against-naive", test_blocks_against_naive);
  g_test_add_func ("/cpu-kernels/thread-counts", test_thread_counts);
  return g_test_run ();
}
