/* Matrix products of the CPU backend: oneDNN matmul primitives (weights packed once, epilogue
 * fused as post-ops), or OpenBLAS's cblas_sgemm and the row epilogue in builds without oneDNN
 * and with UMGCLIP_CPU_GEMM=openblas. Each product runs single-threaded on the pool thread
 * that calls it. */
#include "cpu_gemm.h"

#include "umgclip.h"

#include <cblas.h>
#include <string.h>
#ifdef UMGCLIP_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#endif

struct _UmgCpuGemmEngine
{
  gboolean dnnl_path; /* else cblas */
  guint n_threads;
  const UmgCpuKernels *kernels;
  gchar *library;
  /* per thread: scratch memory of the largest product made so far */
  gpointer *scratch;
  gsize scratch_bytes;
#ifdef UMGCLIP_HAVE_DNNL
  dnnl_engine_t dnnl;
  dnnl_stream_t *streams; /* per thread */
  GPtrArray *packed;      /* PackedWeight *, owned */
#endif
};

struct _UmgCpuGemm
{
  UmgCpuGemmEngine *engine;
  UmgCpuGemmShape shape;
#ifdef UMGCLIP_HAVE_DNNL
  dnnl_primitive_t primitive;
  gboolean packed, has_scratchpad;
  gint n_args;
  dnnl_memory_t *memories; /* n_threads × N_ARGS */
  dnnl_exec_arg_t *args;   /* n_threads × N_ARGS */
#endif
};

static gboolean
reserve_scratch (UmgCpuGemmEngine *engine, gsize bytes, GError **error)
{
  if (bytes <= engine->scratch_bytes)
    return TRUE;
  for (guint t = 0; t < engine->n_threads; t++)
    {
      g_free (engine->scratch[t]);
      engine->scratch[t] = g_try_malloc (bytes);
      if (engine->scratch[t] == NULL)
        {
          engine->scratch_bytes = 0;
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE,
                       "cpu: out of memory for %" G_GSIZE_FORMAT " bytes of matmul scratch", bytes);
          return FALSE;
        }
    }
  engine->scratch_bytes = bytes;
  return TRUE;
}

static void
free_scratch (UmgCpuGemmEngine *engine)
{
  for (guint t = 0; t < engine->n_threads; t++)
    g_free (engine->scratch[t]);
  g_free (engine->scratch);
}

#ifdef UMGCLIP_HAVE_DNNL

/* A weight matrix tile in the layout a primitive asked for. */
typedef struct
{
  gconstpointer key;
  gint n, k, ldb;
  gboolean trans_b;
  dnnl_memory_desc_t md;
  gpointer data;
} PackedWeight;

enum
{
  ARG_SRC,
  ARG_WEIGHTS,
  ARG_DST,
  ARG_BIAS,
  ARG_SCRATCHPAD,
  N_ARGS
};

static gboolean
dnnl_failed (dnnl_status_t status, const gchar *what, const UmgCpuGemmShape *shape, GError **error)
{
  if (status == dnnl_success)
    return FALSE;
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE,
               "cpu: oneDNN could not %s for a %d × %d × %d matmul (status %d)", what, shape->m,
               shape->n, shape->k, (gint) status);
  return TRUE;
}

static void
packed_weight_free (gpointer data)
{
  PackedWeight *weight = data;
  g_free (weight->data);
  g_free (weight);
}

static gboolean
dnnl_engine_setup (UmgCpuGemmEngine *engine, GError **error)
{
  const dnnl_version_t *version = dnnl_version ();
  UmgCpuGemmShape none = { 0 };

  engine->streams = g_new0 (dnnl_stream_t, engine->n_threads);
  engine->packed = g_ptr_array_new_with_free_func (packed_weight_free);
  engine->library
      = g_strdup_printf ("oneDNN %d.%d.%d", version->major, version->minor, version->patch);
  if (dnnl_failed (dnnl_engine_create (&engine->dnnl, dnnl_cpu, 0), "create a CPU engine", &none,
                   error))
    return FALSE;
  for (guint t = 0; t < engine->n_threads; t++)
    if (dnnl_failed (
            dnnl_stream_create (&engine->streams[t], engine->dnnl, dnnl_stream_default_flags),
            "create a stream", &none, error))
      return FALSE;
  return TRUE;
}

static void
dnnl_engine_clear (UmgCpuGemmEngine *engine)
{
  for (guint t = 0; engine->streams != NULL && t < engine->n_threads; t++)
    if (engine->streams[t] != NULL)
      dnnl_stream_destroy (engine->streams[t]);
  g_free (engine->streams);
  if (engine->dnnl != NULL)
    dnnl_engine_destroy (engine->dnnl);
  if (engine->packed != NULL)
    g_ptr_array_unref (engine->packed);
}

static void
matrix_md (dnnl_memory_desc_t *md, gint rows, gint cols, gint64 row_stride, gint64 col_stride)
{
  dnnl_dims_t dims = { rows, cols }, strides = { row_stride, col_stride };
  dnnl_memory_desc_init_by_strides (md, 2, dims, dnnl_f32, strides);
}

/* B of shape in the layout want: a copy made once per (weight tile, layout). */
static gpointer
packed_weight (UmgCpuGemmEngine *engine, const UmgCpuGemmShape *shape,
               const dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *want, GError **error)
{
  PackedWeight *weight;
  dnnl_primitive_desc_t reorder_pd = NULL;
  dnnl_primitive_t reorder = NULL;
  dnnl_memory_t from = NULL, to = NULL;
  dnnl_status_t status;

  for (guint i = 0; i < engine->packed->len; i++)
    {
      weight = g_ptr_array_index (engine->packed, i);
      if (weight->key == shape->weight_key && weight->n == shape->n && weight->k == shape->k
          && weight->ldb == shape->ldb && weight->trans_b == shape->trans_b
          && dnnl_memory_desc_equal (&weight->md, want))
        return weight->data;
    }
  weight = g_new0 (PackedWeight, 1);
  *weight = (PackedWeight){ shape->weight_key,
                            shape->n,
                            shape->k,
                            shape->ldb,
                            shape->trans_b,
                            *want,
                            g_try_malloc (dnnl_memory_desc_get_size (want)) };
  status = weight->data == NULL ? dnnl_out_of_memory : dnnl_success;
  /* a copy even in the plain layout: packable_b may be a temporary conversion */
  if (status == dnnl_success && dnnl_memory_desc_equal (plain, want))
    {
      memcpy (weight->data, shape->packable_b, dnnl_memory_desc_get_size (want));
      g_ptr_array_add (engine->packed, weight);
      return weight->data;
    }
  if (status == dnnl_success)
    status = dnnl_reorder_primitive_desc_create (&reorder_pd, plain, engine->dnnl, want,
                                                 engine->dnnl, NULL);
  if (status == dnnl_success)
    status = dnnl_primitive_create (&reorder, reorder_pd);
  if (status == dnnl_success)
    status = dnnl_memory_create (&from, plain, engine->dnnl, (gpointer) shape->packable_b);
  if (status == dnnl_success)
    status = dnnl_memory_create (&to, want, engine->dnnl, weight->data);
  if (status == dnnl_success)
    {
      dnnl_exec_arg_t args[2] = { { DNNL_ARG_FROM, from }, { DNNL_ARG_TO, to } };
      status = dnnl_primitive_execute (reorder, engine->streams[0], 2, args);
    }
  if (status == dnnl_success)
    status = dnnl_stream_wait (engine->streams[0]);
  dnnl_memory_destroy (from);
  dnnl_memory_destroy (to);
  dnnl_primitive_destroy (reorder);
  dnnl_primitive_desc_destroy (reorder_pd);
  if (dnnl_failed (status, "pack a weight matrix", shape, error))
    {
      packed_weight_free (weight);
      return NULL;
    }
  g_ptr_array_add (engine->packed, weight);
  return weight->data;
}

static dnnl_status_t
make_primitive_desc (UmgCpuGemmEngine *engine, const UmgCpuGemmShape *shape,
                     const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *weights,
                     const dnnl_memory_desc_t *bias, const dnnl_memory_desc_t *dst,
                     dnnl_primitive_desc_t *pd)
{
  dnnl_matmul_desc_t desc;
  dnnl_primitive_attr_t attr = NULL;
  dnnl_post_ops_t post_ops = NULL;
  /* oneDNN scales after adding its bias: with alpha, the bias is a binary post-op instead */
  gboolean bias_post_op = bias != NULL && shape->alpha != 1.0f;
  dnnl_status_t status
      = dnnl_matmul_desc_init (&desc, src, weights, bias_post_op ? NULL : bias, dst);

  if (status == dnnl_success)
    status = dnnl_primitive_attr_create (&attr);
  if (status == dnnl_success)
    status = dnnl_primitive_attr_set_scratchpad_mode (attr, dnnl_scratchpad_mode_user);
  if (status == dnnl_success && shape->alpha != 1.0f)
    status = dnnl_primitive_attr_set_output_scales (attr, 1, 0, &shape->alpha);
  if (status == dnnl_success)
    status = dnnl_post_ops_create (&post_ops);
  if (status == dnnl_success && bias_post_op)
    status = dnnl_post_ops_append_binary (post_ops, dnnl_binary_add, bias);
  /* act(product + bias) first, then the sum with what C held */
  if (status == dnnl_success && shape->act == UMG_ACT_QUICK_GELU)
    status = dnnl_post_ops_append_eltwise (post_ops, 1.0f, dnnl_eltwise_swish, 1.702f, 0.0f);
  if (status == dnnl_success && shape->act == UMG_ACT_GELU)
    status = dnnl_post_ops_append_eltwise (post_ops, 1.0f, dnnl_eltwise_gelu_erf, 0.0f, 0.0f);
  if (status == dnnl_success && shape->accumulate)
    status = dnnl_post_ops_append_sum (post_ops, 1.0f);
  if (status == dnnl_success)
    status = dnnl_primitive_attr_set_post_ops (attr, post_ops);
  if (status == dnnl_success)
    status = dnnl_primitive_desc_create (pd, &desc, attr, engine->dnnl, NULL);
  dnnl_post_ops_destroy (post_ops);
  dnnl_primitive_attr_destroy (attr);
  return status;
}

static UmgCpuGemm *
dnnl_gemm_new (UmgCpuGemmEngine *engine, const UmgCpuGemmShape *shape, GError **error)
{
  UmgCpuGemm *gemm = g_new0 (UmgCpuGemm, 1);
  dnnl_memory_desc_t src, weights, weights_any, bias, dst, scratchpad;
  const dnnl_memory_desc_t *mds[N_ARGS] = { &src, &weights, &dst, &bias, &scratchpad };
  int arg_ids[N_ARGS]
      = { DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS, DNNL_ARG_SCRATCHPAD };
  dnnl_primitive_desc_t pd = NULL;
  gpointer packed_data = NULL;
  dnnl_status_t status;

  gemm->engine = engine;
  gemm->shape = *shape;
  if (shape->bias && shape->alpha != 1.0f)
    arg_ids[ARG_BIAS] = DNNL_ARG_ATTR_MULTIPLE_POST_OP (0) | DNNL_ARG_SRC_1;
  matrix_md (&src, shape->m, shape->k, shape->lda, 1);
  if (shape->trans_b)
    matrix_md (&weights, shape->k, shape->n, 1, shape->ldb);
  else
    matrix_md (&weights, shape->k, shape->n, shape->ldb, 1);
  matrix_md (&bias, 1, shape->n, shape->n, 1);
  matrix_md (&dst, shape->m, shape->n, shape->ldc, 1);
  if (shape->packable_b != NULL)
    {
      dnnl_dims_t dims = { shape->k, shape->n };
      dnnl_memory_desc_init_by_tag (&weights_any, 2, dims, dnnl_f32, dnnl_format_tag_any);
    }
  status = make_primitive_desc (engine, shape, &src, shape->packable_b ? &weights_any : &weights,
                                shape->bias ? &bias : NULL, &dst, &pd);
  if (dnnl_failed (status, "make a primitive", shape, error))
    goto failed;
  if (shape->packable_b != NULL)
    {
      const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md (pd, dnnl_query_weights_md, 0);
      packed_data = packed_weight (engine, shape, &weights, want, error);
      if (packed_data == NULL)
        goto failed;
      weights = *want;
      gemm->packed = TRUE;
    }
  /* copied: the descriptors pd returns go with it */
  scratchpad = *dnnl_primitive_desc_query_md (pd, dnnl_query_scratchpad_md, 0);
  gemm->has_scratchpad = dnnl_memory_desc_get_size (&scratchpad) > 0;
  if (!reserve_scratch (engine, dnnl_memory_desc_get_size (&scratchpad), error))
    goto failed;
  if (dnnl_failed (dnnl_primitive_create (&gemm->primitive, pd), "compile a primitive", shape,
                   error))
    goto failed;
  dnnl_primitive_desc_destroy (g_steal_pointer (&pd));

  gemm->memories = g_new0 (dnnl_memory_t, (gsize) engine->n_threads * N_ARGS);
  gemm->args = g_new0 (dnnl_exec_arg_t, (gsize) engine->n_threads * N_ARGS);
  for (guint t = 0; t < engine->n_threads; t++)
    {
      gint n_args = 0;
      for (gint i = 0; i < N_ARGS; i++)
        {
          dnnl_memory_t *memory = &gemm->memories[t * N_ARGS + i];
          if ((i == ARG_BIAS && !shape->bias) || (i == ARG_SCRATCHPAD && !gemm->has_scratchpad))
            continue;
          status = dnnl_memory_create (memory, mds[i], engine->dnnl,
                                       i == ARG_WEIGHTS && gemm->packed ? packed_data
                                                                        : DNNL_MEMORY_NONE);
          if (dnnl_failed (status, "wrap memory", shape, error))
            goto failed;
          gemm->args[t * N_ARGS + n_args++] = (dnnl_exec_arg_t){ arg_ids[i], *memory };
        }
      gemm->n_args = n_args;
    }
  return gemm;

failed:
  if (pd != NULL)
    dnnl_primitive_desc_destroy (pd);
  umg_cpu_gemm_free (gemm);
  return NULL;
}

static void
dnnl_gemm_clear (UmgCpuGemm *gemm)
{
  if (gemm->memories != NULL)
    for (guint i = 0; i < gemm->engine->n_threads * N_ARGS; i++)
      if (gemm->memories[i] != NULL)
        dnnl_memory_destroy (gemm->memories[i]);
  g_free (gemm->memories);
  g_free (gemm->args);
  if (gemm->primitive != NULL)
    dnnl_primitive_destroy (gemm->primitive);
}

static void
dnnl_gemm_run (UmgCpuGemm *gemm, const gfloat *a, const gfloat *b, const gfloat *bias, gfloat *c,
               guint thread)
{
  dnnl_memory_t *memories = gemm->memories + thread * N_ARGS;

  if (omp_get_max_threads () != 1)
    omp_set_num_threads (1);
  dnnl_memory_set_data_handle (memories[ARG_SRC], (gpointer) a);
  if (!gemm->packed)
    dnnl_memory_set_data_handle (memories[ARG_WEIGHTS], (gpointer) b);
  dnnl_memory_set_data_handle (memories[ARG_DST], c);
  if (gemm->shape.bias)
    dnnl_memory_set_data_handle (memories[ARG_BIAS], (gpointer) bias);
  if (gemm->has_scratchpad)
    dnnl_memory_set_data_handle (memories[ARG_SCRATCHPAD], gemm->engine->scratch[thread]);
  dnnl_primitive_execute (gemm->primitive, gemm->engine->streams[thread], gemm->n_args,
                          gemm->args + thread * N_ARGS);
}

#endif

void openblas_set_num_threads (int threads);

UmgCpuGemmEngine *
umg_cpu_gemm_engine_new (guint n_threads, const UmgCpuKernels *kernels, GError **error)
{
  UmgCpuGemmEngine *engine = g_new0 (UmgCpuGemmEngine, 1);
  engine->n_threads = MAX (n_threads, 1);
  engine->kernels = kernels;
  engine->scratch = g_new0 (gpointer, engine->n_threads);
#ifdef UMGCLIP_HAVE_DNNL
  const gchar *choice = g_getenv ("UMGCLIP_CPU_GEMM");
  /* measured (docs/PERFORMANCE.md): oneDNN's AVX-512 kernels beat OpenBLAS's, while on AVX2
   * OpenBLAS's Haswell kernels beat oneDNN's; so the row kernels' ISA decides by default */
  if (choice != NULL && *choice != '\0')
    engine->dnnl_path = g_strcmp0 (choice, "openblas") != 0;
  else
    engine->dnnl_path = g_strcmp0 (kernels->name, "avx512") == 0;
  if (engine->dnnl_path && !dnnl_engine_setup (engine, error))
    {
      umg_cpu_gemm_engine_free (engine);
      return NULL;
    }
#endif
  if (!engine->dnnl_path)
    engine->library = g_strdup ("OpenBLAS");
  return engine;
}

void
umg_cpu_gemm_engine_free (UmgCpuGemmEngine *engine)
{
  if (engine == NULL)
    return;
#ifdef UMGCLIP_HAVE_DNNL
  dnnl_engine_clear (engine);
#endif
  free_scratch (engine);
  g_free (engine->library);
  g_free (engine);
}

void
umg_cpu_gemm_engine_forget_weights (UmgCpuGemmEngine *engine)
{
#ifdef UMGCLIP_HAVE_DNNL
  if (engine->packed != NULL)
    g_ptr_array_set_size (engine->packed, 0);
#endif
}

gint
umg_cpu_gemm_enter (void)
{
  gint saved = 1;
  /* OpenBLAS's thread count is global: the pool threads are its threads */
  openblas_set_num_threads (1);
#ifdef UMGCLIP_HAVE_DNNL
  /* oneDNN primitives take their thread count from the creating thread, and run with it */
  saved = omp_get_max_threads ();
  omp_set_num_threads (1);
#endif
  return saved;
}

void
umg_cpu_gemm_leave (gint saved)
{
#ifdef UMGCLIP_HAVE_DNNL
  omp_set_num_threads (saved);
#endif
}

UmgCpuGemm *
umg_cpu_gemm_new (UmgCpuGemmEngine *engine, const UmgCpuGemmShape *shape, GError **error)
{
  UmgCpuGemm *gemm;

#ifdef UMGCLIP_HAVE_DNNL
  if (engine->dnnl_path)
    return dnnl_gemm_new (engine, shape, error);
#endif
  /* an activation before accumulating needs the product apart from C */
  if (shape->accumulate && shape->act != UMG_ACT_NONE
      && !reserve_scratch (engine, (gsize) shape->m * shape->n * sizeof (gfloat), error))
    return NULL;
  gemm = g_new0 (UmgCpuGemm, 1);
  gemm->engine = engine;
  gemm->shape = *shape;
  return gemm;
}

void
umg_cpu_gemm_free (UmgCpuGemm *gemm)
{
  if (gemm == NULL)
    return;
#ifdef UMGCLIP_HAVE_DNNL
  dnnl_gemm_clear (gemm);
#endif
  g_free (gemm);
}

static void
blas_gemm_run (UmgCpuGemm *gemm, const gfloat *a, const gfloat *b, const gfloat *bias, gfloat *c,
               guint thread)
{
  const UmgCpuGemmShape *s = &gemm->shape;
  enum CBLAS_TRANSPOSE trans_b = s->trans_b ? CblasTrans : CblasNoTrans;
  gboolean separate = s->accumulate && s->act != UMG_ACT_NONE;
  gfloat *product = separate ? gemm->engine->scratch[thread] : c;
  gint ld_product = separate ? s->n : s->ldc;

  if (s->packable_b != NULL)
    b = s->packable_b;
  if (!s->bias)
    bias = NULL;
  cblas_sgemm (CblasRowMajor, CblasNoTrans, trans_b, s->m, s->n, s->k, s->alpha, a, s->lda, b,
               s->ldb, s->accumulate && !separate ? 1.0f : 0.0f, product, ld_product);
  if (bias == NULL && s->act == UMG_ACT_NONE)
    return;
  for (gint i = 0; i < s->m; i++)
    gemm->engine->kernels->epilogue (c + (gsize) i * s->ldc, product + (gsize) i * ld_product, bias,
                                     s->n, s->act, separate);
}

void
umg_cpu_gemm_run (UmgCpuGemm *gemm, const gfloat *a, const gfloat *b, const gfloat *bias, gfloat *c,
                  guint thread)
{
#ifdef UMGCLIP_HAVE_DNNL
  if (gemm->engine->dnnl_path)
    {
      dnnl_gemm_run (gemm, a, b, bias, c, thread);
      return;
    }
#endif
  blas_gemm_run (gemm, a, b, bias, c, thread);
}

gboolean
umg_cpu_gemm_engine_packs (const UmgCpuGemmEngine *engine)
{
  return engine->dnnl_path;
}

const gchar *
umg_cpu_gemm_engine_library (const UmgCpuGemmEngine *engine)
{
  return engine->library;
}
