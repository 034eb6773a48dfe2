/* The CPU backend: every op of graph.h on the host, split into tasks for the backend's thread
 * pool (cpu_pool.c), with vector row kernels (cpu_kernels.c) and matrix products through the
 * GEMM library (cpu_gemm.c). Each op keeps its plain-C reference (UMGCLIP_CPU_NAIVE=1 runs
 * only those, with a double-accumulating matmul), the oracle the Vulkan shaders and the fast
 * kernels are tested against.
 *
 * Results never depend on which other images share a batched pass: every product is cut
 * into the same tiles for each image, and a tile is computed the same way whichever thread
 * takes it. They depend on the thread count only through the GEMM tiles' widths. */
#include "backend.h"
#include "cpu_fusion.h"
#include "cpu_gemm.h"
#include "cpu_kernels.h"
#include "cpu_pool.h"
#include "frame.h"
#include "region.h"
#include "umgclip.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

typedef struct
{
  UmgBackend parent;
  /* One f32 view per weight, made when a plan first reads it at run time: F32 and I32 data is
   * used in place, F16 is converted once. Weight matrices the GEMM library packs get none. */
  const gfloat **weights;
  gsize *weight_elements;
  const UmgTensor *weight_tensors; /* the caller's, for the graph contract and its messages */
  gfloat **converted_weights;      /* owned copies of F16 weights, NULL where used in place */
  guint n_weights;
  /* UMGCLIP_CPU_NAIVE=1: the reference kernels and a triple-loop matmul in double. */
  gboolean naive;
  const UmgCpuKernels *kernels;
  UmgCpuPool *pool;
  UmgCpuGemmEngine *gemm; /* NULL when naive */
} UmgCpuBackend;

/* A rectangle of one product, computed by one GEMM call. */
typedef struct
{
  gint m0, n0;
  UmgCpuGemm *gemm;
} Tile;

typedef enum
{
  STEP_OP,        /* one op, split by rows or elements */
  STEP_MATMUL,    /* one matmul, batch × tiles */
  STEP_ATTENTION, /* matmul, softmax, matmul of attention fused: one task per head */
} StepKind;

typedef struct
{
  StepKind kind;
  guint first; /* position of its (first) op */
  guint n_tasks;
  guint n_tiles;
  Tile *tiles;
  gboolean packed_b;        /* matmul: B is a weight the GEMM library keeps packed copies of */
  UmgCpuGemm *logits, *mix; /* attention */
} Step;

struct _UmgPlan
{
  const UmgGraph *graph; /* outlives the plan */
  gfloat *arena;         /* graph->arena_elements, 4-byte elements */
  const gfloat **consts; /* f32 views of graph->consts, like the weights */
  gfloat **converted_consts;
  GArray *steps;             /* Step */
  const void *const *inputs; /* during a run: the caller's inputs, read in place when direct */
};

/* ---- tensors as f32 views ---------------------------------------------------------------- */

static gboolean
tensor_view (const UmgTensor *tensor, const gfloat **view, gfloat **converted, GError **error)
{
  *converted = NULL;
  switch (tensor->dtype)
    {
    case UMG_DTYPE_F32:
    case UMG_DTYPE_I32:
      /* I32 tensors keep their bits: only GATHER reads them, as ids. */
      *view = tensor->data;
      return TRUE;
    case UMG_DTYPE_F16:
      {
        const guint16 *half = tensor->data;
        gfloat *values = g_try_new (gfloat, MAX (tensor->n_elements, 1));
        if (values == NULL)
          {
            g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE,
                         "cpu: out of memory converting tensor '%s' (%" G_GSIZE_FORMAT
                         " elements) to f32",
                         tensor->name ? tensor->name : "?", tensor->n_elements);
            return FALSE;
          }
        for (gsize i = 0; i < tensor->n_elements; i++)
          values[i] = umg_half_to_float (half[i]);
        *view = values;
        *converted = values;
        return TRUE;
      }
    }
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_MODEL, "cpu: tensor '%s' has unknown dtype %d",
               tensor->name ? tensor->name : "?", (gint) tensor->dtype);
  return FALSE;
}

static void
clear_weights (UmgCpuBackend *cpu)
{
  for (guint i = 0; i < cpu->n_weights; i++)
    g_free (cpu->converted_weights[i]);
  g_clear_pointer (&cpu->converted_weights, g_free);
  g_clear_pointer (&cpu->weights, g_free);
  g_clear_pointer (&cpu->weight_elements, g_free);
  cpu->n_weights = 0;
  cpu->weight_tensors = NULL;
  /* packed copies of the old weights go too */
  if (cpu->gemm != NULL)
    umg_cpu_gemm_engine_forget_weights (cpu->gemm);
}

static gboolean
cpu_set_weights (UmgBackend *backend, const UmgTensor *weights, guint n_weights, GError **error)
{
  UmgCpuBackend *cpu = (UmgCpuBackend *) backend;

  clear_weights (cpu);
  cpu->weights = g_new0 (const gfloat *, MAX (n_weights, 1));
  cpu->weight_elements = g_new0 (gsize, MAX (n_weights, 1));
  cpu->converted_weights = g_new0 (gfloat *, MAX (n_weights, 1));
  cpu->n_weights = n_weights;
  cpu->weight_tensors = weights;
  for (guint i = 0; i < n_weights; i++)
    {
      cpu->weight_elements[i] = weights[i].n_elements;
      if (weights[i].dtype != UMG_DTYPE_F32 && weights[i].dtype != UMG_DTYPE_F16
          && weights[i].dtype != UMG_DTYPE_I32)
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_MODEL,
                       "cpu: tensor '%s' has unknown dtype %d",
                       weights[i].name ? weights[i].name : "?", (gint) weights[i].dtype);
          clear_weights (cpu);
          return FALSE;
        }
    }
  return TRUE;
}

/* The f32 view of weight index, converted on first use. */
static gboolean
weight_view (UmgCpuBackend *cpu, guint index, GError **error)
{
  if (cpu->weights[index] != NULL)
    return TRUE;
  return tensor_view (&cpu->weight_tensors[index], &cpu->weights[index],
                      &cpu->converted_weights[index], error);
}

/* ---- reference matmul and the per-op row loops -------------------------------------------- */

/* Rows [r0, r1) of batch b of the double-accumulating reference product. */
static void
matmul_naive_rows (const UmgMatmulParams *mm, const gfloat *a, const gfloat *b, const gfloat *bias,
                   gfloat *c, gint r0, gint r1, const UmgCpuKernels *kernels)
{
  for (gint i = r0; i < r1; i++)
    for (gint j = 0; j < mm->n; j++)
      {
        gdouble sum = 0.0;
        gfloat product;
        for (gint l = 0; l < mm->k; l++)
          {
            gfloat b_value = mm->trans_b ? b[(gsize) j * mm->ldb + l] : b[(gsize) l * mm->ldb + j];
            sum += (gdouble) a[(gsize) i * mm->lda + l] * b_value;
          }
        product = (gfloat) (mm->alpha * sum);
        kernels->epilogue (c + (gsize) i * mm->ldc + j, &product, bias ? bias + j : NULL, 1,
                           mm->act, mm->accumulate);
      }
}

static void
im2col_rows (const UmgIm2colParams *p, const gfloat *image, gfloat *dst, gint gy0, gint gy1)
{
  gsize plane = (gsize) p->height * p->width;
  gsize row_length = (gsize) p->channels * p->patch * p->patch;

  for (gint gy = gy0; gy < gy1; gy++)
    for (gint gx = 0; gx < p->grid_w; gx++)
      {
        gfloat *out = dst + ((gsize) gy * p->grid_w + gx) * row_length;
        for (gint channel = 0; channel < p->channels; channel++)
          for (gint ky = 0; ky < p->patch; ky++)
            {
              const gfloat *in = image + channel * plane + (gsize) (gy * p->patch + ky) * p->width
                                 + (gsize) gx * p->patch;
              memcpy (out, in, p->patch * sizeof (gfloat));
              out += p->patch;
            }
      }
}

/* dst[i] = a[i] + b[i % n_b] for i in [i0, i1) */
static void
add_range (const gfloat *a, const gfloat *b, gint64 n_b, gfloat *dst, gint64 i0, gint64 i1)
{
  gint64 j = i0 % n_b;
  for (gint64 i = i0; i < i1;)
    {
      gint64 run = MIN (i1 - i, n_b - j);
      for (gint64 x = 0; x < run; x++)
        dst[i + x] = a[i + x] + b[j + x];
      i += run;
      j = 0;
    }
}

static void
l2norm_row (const gfloat *in, gfloat *out, gint cols)
{
  gdouble squares = 0.0, scale;
  for (gint c = 0; c < cols; c++)
    squares += (gdouble) in[c] * in[c];
  scale = 1.0 / MAX (sqrt (squares), 1e-12);
  for (gint c = 0; c < cols; c++)
    out[c] = (gfloat) (in[c] * scale);
}

/* ---- planning: ops into steps of parallel tasks ------------------------------------------ */

static const gfloat *
resolve (UmgCpuBackend *cpu, UmgPlan *plan, UmgRef ref)
{
  if (umg_ref_is_none (ref))
    return NULL;
  switch (ref.storage)
    {
    case UMG_STORAGE_ARENA:
      return plan->arena + ref.offset;
    case UMG_STORAGE_WEIGHT:
      return cpu->weights[ref.index] + ref.offset;
    case UMG_STORAGE_CONST:
      return plan->consts[ref.index] + ref.offset;
    case UMG_STORAGE_INPUT:
      return (const gfloat *) plan->inputs[ref.index] + ref.offset;
    }
  return NULL;
}

static gsize
table_elements (UmgCpuBackend *cpu, UmgPlan *plan, UmgRef ref)
{
  switch (ref.storage)
    {
    case UMG_STORAGE_ARENA:
      return plan->graph->arena_elements - ref.offset;
    case UMG_STORAGE_WEIGHT:
      return cpu->weight_elements[ref.index] - ref.offset;
    case UMG_STORAGE_CONST:
      return ((const UmgTensor *) g_ptr_array_index (plan->graph->consts, ref.index))->n_elements
             - ref.offset;
    case UMG_STORAGE_INPUT:
      return g_array_index (plan->graph->inputs, UmgSlot, ref.index).n_elements - ref.offset;
    }
  return 0;
}

/* The GEMM library's form of one (tile of a) matmul; packable_b and weight_key as
 * UmgCpuGemmShape. */
static UmgCpuGemm *
new_gemm (UmgCpuBackend *cpu, const UmgMatmulParams *mm, gboolean bias, gint m, gint n,
          const gfloat *packable_b, gconstpointer weight_key, GError **error)
{
  UmgCpuGemmShape shape = {
    .m = m,
    .n = n,
    .k = mm->k,
    .lda = mm->lda,
    .ldb = mm->ldb,
    .ldc = mm->ldc,
    .trans_b = mm->trans_b,
    .accumulate = mm->accumulate,
    .bias = bias,
    .act = mm->act,
    .alpha = mm->alpha,
    .packable_b = packable_b,
    .weight_key = weight_key,
  };
  return umg_cpu_gemm_new (cpu->gemm, &shape, error);
}

/* The GEMM of one tile whose B is rows × cols of weight ref (rows ldb apart). A library that
 * packs gets F16 weights converted for the tile alone, so no f32 copy of them stays. */
static UmgCpuGemm *
new_weight_gemm (UmgCpuBackend *cpu, const UmgMatmulParams *mm, gboolean bias, gint m, gint n,
                 UmgRef ref, gint rows, gint cols, gboolean packed, GError **error)
{
  const UmgTensor *tensor = &cpu->weight_tensors[ref.index];
  gsize extent = umg_strided_extent (1, 0, rows, mm->ldb, cols);
  g_autofree gfloat *converted = NULL;
  UmgCpuGemm *gemm;

  if (packed && tensor->dtype == UMG_DTYPE_F16)
    {
      const guint16 *half = (const guint16 *) tensor->data + ref.offset;
      converted = g_try_new (gfloat, extent);
      if (converted == NULL)
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE,
                       "cpu: out of memory converting a tile of '%s' to f32",
                       tensor->name ? tensor->name : "?");
          return NULL;
        }
      for (gsize i = 0; i < extent; i++)
        converted[i] = umg_half_to_float (half[i]);
      return new_gemm (cpu, mm, bias, m, n, converted, half, error);
    }
  if (!weight_view (cpu, ref.index, error))
    return NULL;
  gemm = new_gemm (cpu, mm, bias, m, n, cpu->weights[ref.index] + ref.offset,
                   cpu->weights[ref.index] + ref.offset, error);
  return gemm;
}

/* Column (and, for narrow products, row) tiles for the pool's threads. Columns split at
 * multiples of 16; the tiles depend on the shape and the thread count only, never on the
 * batch. Weight matrices are packed per tile. */
static gboolean
plan_matmul (UmgCpuBackend *cpu, const UmgOp *op, Step *step, GError **error)
{
  const UmgMatmulParams *mm = &op->p.mm;
  const gint threads = (gint) umg_cpu_pool_threads (cpu->pool);
  const gint n_parts = CLAMP (mm->n / 64, 1, threads);
  const gint m_parts = CLAMP (mm->m / 32, 1, (threads + n_parts - 1) / n_parts);
  const gboolean weight
      = op->src[1].storage == UMG_STORAGE_WEIGHT && (mm->batch == 1 || mm->stride_b == 0);
  const gboolean bias = !umg_ref_is_none (op->src[2]);

  step->kind = STEP_MATMUL;
  step->packed_b = weight && umg_cpu_gemm_engine_packs (cpu->gemm);
  step->n_tiles = (guint) (n_parts * m_parts);
  step->tiles = g_new0 (Tile, step->n_tiles);
  step->n_tasks = (guint) mm->batch * step->n_tiles;
  for (gint mi = 0; mi < m_parts; mi++)
    for (gint ni = 0; ni < n_parts; ni++)
      {
        Tile *tile = &step->tiles[mi * n_parts + ni];
        gsize m0, m1;
        gint n0 = ni == 0 ? 0 : MIN (((gint64) mm->n * ni / n_parts + 8) / 16 * 16, mm->n);
        gint n1 = ni == n_parts - 1
                      ? mm->n
                      : MIN (((gint64) mm->n * (ni + 1) / n_parts + 8) / 16 * 16, mm->n);
        umg_cpu_split (mm->m, m_parts, mi, &m0, &m1);
        tile->m0 = (gint) m0;
        tile->n0 = n0;
        if (weight)
          tile->gemm = new_weight_gemm (
              cpu, mm, bias, (gint) (m1 - m0), n1 - n0,
              umg_ref_offset (op->src[1], mm->trans_b ? (gsize) n0 * mm->ldb : (gsize) n0),
              mm->trans_b ? n1 - n0 : mm->k, mm->trans_b ? mm->k : n1 - n0, step->packed_b, error);
        else
          tile->gemm = new_gemm (cpu, mm, bias, (gint) (m1 - m0), n1 - n0, NULL, NULL, error);
        if (tile->gemm == NULL)
          return FALSE;
      }
  return TRUE;
}

static gboolean
plan_attention (UmgCpuBackend *cpu, const UmgOp *ops, Step *step, GError **error)
{
  const UmgMatmulParams *l = &ops[0].p.mm, *m = &ops[2].p.mm;

  step->kind = STEP_ATTENTION;
  step->n_tasks = (guint) l->batch;
  step->logits = new_gemm (cpu, l, FALSE, l->m, l->n, NULL, NULL, error);
  step->mix = step->logits ? new_gemm (cpu, m, FALSE, m->m, m->n, NULL, NULL, error) : NULL;
  return step->mix != NULL;
}

/* Tasks for items of item_size elements: four per thread (balance on a loaded machine), none
 * much under 4096 elements, at most one per item. */
static guint
chunks (UmgCpuBackend *cpu, gsize items, gsize item_size)
{
  gsize by_size = MAX (items * item_size / 4096, 1);
  return (guint) MAX (MIN (MIN (items, by_size), 4 * umg_cpu_pool_threads (cpu->pool)), 1);
}

/* Tasks of an op computed row by row or element by element; 1 where rows could overlap. */
static guint
op_tasks (UmgCpuBackend *cpu, const UmgOp *op)
{
  switch (op->type)
    {
    case UMG_OP_MATMUL:
      return chunks (cpu, (gsize) op->p.mm.batch * op->p.mm.m, (gsize) op->p.mm.n * op->p.mm.k);
    case UMG_OP_LAYERNORM:
      {
        const UmgLayernormParams *ln = &op->p.ln;
        gboolean in_place = op->src[0].storage == op->dst.storage
                            && op->src[0].offset == op->dst.offset
                            && ln->src_stride == ln->dst_stride;
        if (!in_place
            && umg_cpu_overlaps (
                op->src[0], umg_strided_extent (1, 0, ln->rows, ln->src_stride, ln->cols), op->dst,
                umg_strided_extent (1, 0, ln->rows, ln->dst_stride, ln->cols)))
          return 1;
        return chunks (cpu, ln->rows, ln->cols);
      }
    case UMG_OP_SOFTMAX:
      return chunks (cpu, (gsize) op->p.softmax.batch * op->p.softmax.rows, op->p.softmax.cols);
    case UMG_OP_GATHER:
      return chunks (cpu, op->p.gather.rows, op->p.gather.cols);
    case UMG_OP_IM2COL:
      return chunks (cpu, op->p.im2col.grid_h,
                     (gsize) op->p.im2col.grid_w * op->p.im2col.channels * op->p.im2col.patch
                         * op->p.im2col.patch);
    case UMG_OP_ADD:
      if (umg_cpu_overlaps (op->src[1], op->p.add.n_b, op->dst, op->p.add.n))
        return 1;
      return chunks (cpu, (op->p.add.n + 255) / 256, 256);
    case UMG_OP_COPY:
      {
        const UmgCopyParams *copy = &op->p.copy;
        if (umg_cpu_overlaps (
                op->src[0], umg_strided_extent (1, 0, copy->rows, copy->src_stride, copy->cols),
                op->dst, umg_strided_extent (1, 0, copy->rows, copy->dst_stride, copy->cols)))
          return 1;
        return chunks (cpu, copy->rows, copy->cols);
      }
    case UMG_OP_ROI_ALIGN:
      return chunks (cpu, op->p.roi.n_boxes,
                     (gsize) op->p.roi.output_size * op->p.roi.output_size * op->p.roi.sampling
                         * op->p.roi.sampling * op->p.roi.cols);
    case UMG_OP_L2NORM:
      return chunks (cpu, op->p.l2.rows, op->p.l2.cols);
    case UMG_OP_PREPROCESS:
    case UMG_N_OPS:
      break;
    }
  return 1;
}

static void
step_clear (Step *step)
{
  for (guint i = 0; i < step->n_tiles; i++)
    umg_cpu_gemm_free (step->tiles[i].gemm);
  g_free (step->tiles);
  umg_cpu_gemm_free (step->logits);
  umg_cpu_gemm_free (step->mix);
}

static void
cpu_free_plan (UmgBackend *backend, UmgPlan *plan)
{
  if (plan == NULL)
    return;
  if (plan->steps != NULL)
    for (guint i = 0; i < plan->steps->len; i++)
      step_clear (&g_array_index (plan->steps, Step, i));
  g_clear_pointer (&plan->steps, g_array_unref);
  if (plan->converted_consts != NULL)
    for (guint i = 0; i < plan->graph->consts->len; i++)
      g_free (plan->converted_consts[i]);
  g_free (plan->converted_consts);
  g_free (plan->consts);
  g_free (plan->arena);
  g_free (plan);
}

static gboolean
plan_steps (UmgCpuBackend *cpu, UmgPlan *plan, GError **error)
{
  const UmgGraph *graph = plan->graph;

  for (guint i = 0; i < graph->ops->len;)
    {
      const UmgOp *op = &g_array_index (graph->ops, UmgOp, i);
      Step step = { .kind = STEP_OP, .first = i };
      gboolean ok = TRUE;
      guint n_ops = 1;

      if (!cpu->naive && umg_cpu_is_attention (graph, i))
        {
          ok = plan_attention (cpu, op, &step, error);
          n_ops = 3;
        }
      else if (!cpu->naive && op->type == UMG_OP_MATMUL)
        ok = plan_matmul (cpu, op, &step, error);
      else
        step.n_tasks = op_tasks (cpu, op);
      g_array_append_val (plan->steps, step);
      if (!ok)
        return FALSE;
      i += n_ops;
    }
  return TRUE;
}

/* The f32 view of every weight the plan's ops read at run time, so that runs convert nothing;
 * the packed weight matrices of products are read from their copies only. */
static gboolean
prepare_weights (UmgCpuBackend *cpu, UmgPlan *plan, GError **error)
{
  for (guint i = 0; i < plan->steps->len; i++)
    {
      const Step *step = &g_array_index (plan->steps, Step, i);
      const UmgOp *ops = &g_array_index (plan->graph->ops, UmgOp, step->first);
      for (guint o = 0; o < (step->kind == STEP_ATTENTION ? 3u : 1u); o++)
        for (guint s = 0; s < 4; s++)
          if (ops[o].src[s].storage == UMG_STORAGE_WEIGHT && !umg_ref_is_none (ops[o].src[s])
              && !(step->packed_b && s == 1) && !weight_view (cpu, ops[o].src[s].index, error))
            return FALSE;
    }
  return TRUE;
}

static UmgPlan *
cpu_plan (UmgBackend *backend, const UmgGraph *graph, GError **error)
{
  UmgCpuBackend *cpu = (UmgCpuBackend *) backend;
  UmgPlan *plan;
  gboolean ok;
  gint saved;

  if (!umg_graph_validate (graph, cpu->weight_tensors, cpu->n_weights, error))
    return NULL;

  plan = g_new0 (UmgPlan, 1);
  plan->graph = graph;
  plan->consts = g_new0 (const gfloat *, MAX (graph->consts->len, 1));
  plan->converted_consts = g_new0 (gfloat *, MAX (graph->consts->len, 1));
  for (guint i = 0; i < graph->consts->len; i++)
    if (!tensor_view (g_ptr_array_index (graph->consts, i), &plan->consts[i],
                      &plan->converted_consts[i], error))
      {
        cpu_free_plan (backend, plan);
        return NULL;
      }
  plan->arena = g_try_new0 (gfloat, MAX (graph->arena_elements, 1));
  if (plan->arena == NULL)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE,
                   "cpu: out of memory allocating an arena of %" G_GSIZE_FORMAT " elements",
                   graph->arena_elements);
      cpu_free_plan (backend, plan);
      return NULL;
    }
  plan->steps = g_array_new (FALSE, TRUE, sizeof (Step));
  saved = umg_cpu_gemm_enter ();
  ok = plan_steps (cpu, plan, error) && prepare_weights (cpu, plan, error);
  umg_cpu_gemm_leave (saved);
  if (!ok)
    {
      cpu_free_plan (backend, plan);
      return NULL;
    }
  return plan;
}

/* ---- running ----------------------------------------------------------------------------- */

/* One step's pointers for one run. */
typedef struct
{
  UmgCpuBackend *cpu;
  UmgPlan *plan;
  const Step *step;
  const UmgOp *op; /* the step's first op */
  /* attention: A and B of the scores, the softmax bias, V; otherwise the op's sources */
  const gfloat *src[4];
  gfloat *scores; /* attention */
  gfloat *dst;
  GError *error; /* set only by ops that run as one task */
} StepRun;

static void
run_matmul_tile (const StepRun *run, guint task, guint thread)
{
  const UmgMatmulParams *mm = &run->op->p.mm;
  const Tile *tile = &run->step->tiles[task % run->step->n_tiles];
  const gint64 b = task / run->step->n_tiles;
  /* NULL for a packed B: the tile holds its own */
  const gfloat *tile_b = run->src[1]
                             ? run->src[1] + b * mm->stride_b
                                   + (mm->trans_b ? (gsize) tile->n0 * mm->ldb : (gsize) tile->n0)
                             : NULL;

  umg_cpu_gemm_run (tile->gemm, run->src[0] + b * mm->stride_a + (gsize) tile->m0 * mm->lda, tile_b,
                    run->src[2] ? run->src[2] + tile->n0 : NULL,
                    run->dst + b * mm->stride_c + (gsize) tile->m0 * mm->ldc + tile->n0, thread);
}

static void
run_attention_head (const StepRun *run, guint head, guint thread)
{
  const UmgMatmulParams *l = &run->op[0].p.mm, *m = &run->op[2].p.mm;
  const gboolean causal = run->op[1].p.softmax.causal;
  gfloat *scores = run->scores + (gsize) head * l->m * l->n;

  umg_cpu_gemm_run (run->step->logits, run->src[0] + head * l->stride_a,
                    run->src[1] + head * l->stride_b, NULL, scores, thread);
  for (gint r = 0; r < l->m; r++)
    run->cpu->kernels->softmax (scores + (gsize) r * l->n,
                                run->src[2] ? run->src[2] + (gsize) r * l->n : NULL, l->n,
                                causal ? MIN (r + 1, l->n) : l->n);
  umg_cpu_gemm_run (run->step->mix, scores, run->src[3] + head * m->stride_b, NULL,
                    run->dst + head * m->stride_c, thread);
}

static void
run_preprocess (StepRun *run)
{
  const UmgPreprocessParams *pre = &run->op->p.preprocess;
  const gint32 *crop = (const gint32 *) run->src[3];
  UmgClipCrop rect = { crop[0], crop[1], crop[2], crop[3] };
  UmgClipFrame frame = {
    .format = pre->format,
    .width = pre->width,
    .height = pre->height,
    .kr = pre->kr,
    .kb = pre->kb,
    .full_range = pre->full_range,
  };
  gsize elements[3];
  guint n_planes = umg_preprocess_plane_elements (pre, elements);

  for (guint i = 0; i < n_planes; i++)
    {
      frame.planes[i] = (const guint8 *) run->src[i];
      frame.strides[i] = pre->strides[i];
    }
  umg_frame_crop_to_tensor (&frame, &rect, pre->out_w, pre->out_h, pre->mean, pre->std, run->dst,
                            &run->error);
}

/* Rows [first, end) of the naive matmul, counted over every batch. */
static void
run_naive_matmul (const StepRun *run, gsize first, gsize end)
{
  const UmgMatmulParams *mm = &run->op->p.mm;

  for (gsize i = first; i < end;)
    {
      gint64 b = (gint64) (i / mm->m);
      gint r0 = (gint) (i % mm->m), r1 = (gint) MIN ((gsize) mm->m, r0 + (end - i));
      matmul_naive_rows (mm, run->src[0] + b * mm->stride_a, run->src[1] + b * mm->stride_b,
                         run->src[2], run->dst + b * mm->stride_c, r0, r1, run->cpu->kernels);
      i += r1 - r0;
    }
}

/* Task task of an op split by rows (or boxes, or blocks of 256 elements). */
static void
run_op_task (StepRun *run, guint task)
{
  const UmgOp *op = run->op;
  const UmgCpuKernels *kernels = run->cpu->kernels;
  const guint parts = run->step->n_tasks;
  gsize first, end;

  switch (op->type)
    {
    case UMG_OP_MATMUL:
      umg_cpu_split ((gsize) op->p.mm.batch * op->p.mm.m, parts, task, &first, &end);
      run_naive_matmul (run, first, end);
      return;
    case UMG_OP_LAYERNORM:
      umg_cpu_split (op->p.ln.rows, parts, task, &first, &end);
      for (gsize r = first; r < end; r++)
        kernels->layernorm (run->src[0] + r * op->p.ln.src_stride, run->src[1], run->src[2],
                            op->p.ln.cols, op->p.ln.eps, run->dst + r * op->p.ln.dst_stride);
      return;
    case UMG_OP_SOFTMAX:
      {
        const UmgSoftmaxParams *sm = &op->p.softmax;
        umg_cpu_split ((gsize) sm->batch * sm->rows, parts, task, &first, &end);
        for (gsize i = first; i < end; i++)
          {
            gint r = (gint) (i % sm->rows);
            kernels->softmax (run->dst + i * sm->cols,
                              run->src[0] ? run->src[0] + (gsize) r * sm->cols : NULL, sm->cols,
                              sm->causal ? MIN (r + 1, sm->cols) : sm->cols);
          }
        return;
      }
    case UMG_OP_GATHER:
      {
        const gint32 *ids = (const gint32 *) run->src[1];
        umg_cpu_split (op->p.gather.rows, parts, task, &first, &end);
        for (gsize r = first; r < end; r++)
          memcpy (run->dst + r * op->p.gather.cols,
                  run->src[0] + (gsize) ids[r] * op->p.gather.src_stride,
                  op->p.gather.cols * sizeof (gfloat));
        return;
      }
    case UMG_OP_IM2COL:
      umg_cpu_split (op->p.im2col.grid_h, parts, task, &first, &end);
      im2col_rows (&op->p.im2col, run->src[0], run->dst, (gint) first, (gint) end);
      return;
    case UMG_OP_ADD:
      umg_cpu_split ((op->p.add.n + 255) / 256, parts, task, &first, &end);
      add_range (run->src[0], run->src[1], op->p.add.n_b, run->dst, (gint64) first * 256,
                 MIN ((gint64) end * 256, op->p.add.n));
      return;
    case UMG_OP_COPY:
      umg_cpu_split (op->p.copy.rows, parts, task, &first, &end);
      for (gsize r = first; r < end; r++)
        memmove (run->dst + r * op->p.copy.dst_stride, run->src[0] + r * op->p.copy.src_stride,
                 op->p.copy.cols * sizeof (gfloat));
      return;
    case UMG_OP_ROI_ALIGN:
      umg_cpu_split (op->p.roi.n_boxes, parts, task, &first, &end);
      umg_roi_align (run->src[0], op->p.roi.grid_h, op->p.roi.grid_w, op->p.roi.cols,
                     run->src[1] + first * 4, (gint) (end - first), op->p.roi.output_size,
                     op->p.roi.sampling, run->dst + first * op->p.roi.cols);
      return;
    case UMG_OP_L2NORM:
      umg_cpu_split (op->p.l2.rows, parts, task, &first, &end);
      for (gsize r = first; r < end; r++)
        l2norm_row (run->src[0] + r * op->p.l2.cols, run->dst + r * op->p.l2.cols, op->p.l2.cols);
      return;
    case UMG_OP_PREPROCESS:
      run_preprocess (run);
      return;
    case UMG_N_OPS:
      break;
    }
}

static void
step_task (gpointer data, guint task, guint thread)
{
  StepRun *run = data;

  switch (run->step->kind)
    {
    case STEP_MATMUL:
      run_matmul_tile (run, task, thread);
      return;
    case STEP_ATTENTION:
      run_attention_head (run, task, thread);
      return;
    case STEP_OP:
      run_op_task (run, task);
      return;
    }
}

static gboolean
check_gather_ids (UmgCpuBackend *cpu, UmgPlan *plan, const StepRun *run, GError **error)
{
  const UmgOp *op = run->op;
  const gint32 *ids = (const gint32 *) run->src[1];
  gsize table = table_elements (cpu, plan, op->src[0]);

  for (gint r = 0; r < op->p.gather.rows; r++)
    {
      gsize start = (gsize) ids[r] * op->p.gather.src_stride;
      if (ids[r] < 0 || start > table || (gsize) op->p.gather.cols > table - start)
        {
          g_set_error (
              error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
              "cpu: op %u (gather): id %d at row %d is outside the table of %" G_GSIZE_FORMAT
              " rows",
              run->step->first, ids[r], r, table / op->p.gather.src_stride);
          return FALSE;
        }
    }
  return TRUE;
}

static gboolean
run_step (UmgCpuBackend *cpu, UmgPlan *plan, const Step *step, GError **error)
{
  StepRun run = { .cpu = cpu, .plan = plan, .step = step };
  const UmgOp *op = &g_array_index (plan->graph->ops, UmgOp, step->first);

  run.op = op;

  if (step->kind == STEP_ATTENTION)
    {
      run.src[0] = resolve (cpu, plan, op[0].src[0]);
      run.src[1] = resolve (cpu, plan, op[0].src[1]);
      run.src[2] = resolve (cpu, plan, op[1].src[0]);
      run.src[3] = resolve (cpu, plan, op[2].src[1]);
      run.scores = plan->arena + op[0].dst.offset;
      run.dst = plan->arena + op[2].dst.offset;
    }
  else
    {
      for (guint i = 0; i < 4; i++)
        run.src[i] = step->packed_b && i == 1 ? NULL : resolve (cpu, plan, op->src[i]);
      run.dst = plan->arena + op->dst.offset;
      if (op->type == UMG_OP_GATHER && !check_gather_ids (cpu, plan, &run, error))
        return FALSE;
    }
  umg_cpu_pool_run (cpu->pool, step->n_tasks, step_task, &run);
  if (run.error != NULL)
    {
      g_propagate_error (error, run.error);
      return FALSE;
    }
  return TRUE;
}

static gboolean
cpu_run (UmgBackend *backend, UmgPlan *plan, const void *const *inputs,
         const UmgDeviceInput *device_inputs, void *const *outputs, GError **error)
{
  UmgCpuBackend *cpu = (UmgCpuBackend *) backend;
  const UmgGraph *graph = plan->graph;
  gboolean ok = TRUE;
  gint saved;

  for (guint i = 0; i < graph->inputs->len; i++)
    {
      const UmgSlot *slot = &g_array_index (graph->inputs, UmgSlot, i);
      if (device_inputs != NULL && device_inputs[i].buffer != VK_NULL_HANDLE)
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                       "cpu: input %u lies in Vulkan device memory, which the CPU backend "
                       "cannot read",
                       i);
          return FALSE;
        }
      /* direct inputs (video frames) are read where they are, not copied */
      if (!slot->direct)
        memcpy (plan->arena + slot->offset, inputs[i], slot->n_elements * 4);
    }
  plan->inputs = inputs;
  saved = umg_cpu_gemm_enter ();
  for (guint i = 0; ok && i < plan->steps->len; i++)
    ok = run_step (cpu, plan, &g_array_index (plan->steps, Step, i), error);
  umg_cpu_gemm_leave (saved);
  plan->inputs = NULL;
  if (!ok)
    return FALSE;
  for (guint i = 0; i < graph->outputs->len; i++)
    {
      const UmgSlot *slot = &g_array_index (graph->outputs, UmgSlot, i);
      memcpy (outputs[i], plan->arena + slot->offset, slot->n_elements * 4);
    }
  return TRUE;
}

static void
cpu_free (UmgBackend *backend)
{
  UmgCpuBackend *cpu = (UmgCpuBackend *) backend;

  clear_weights (cpu);
  umg_cpu_gemm_engine_free (cpu->gemm);
  umg_cpu_pool_free (cpu->pool);
  g_free (backend->description);
  g_free (cpu);
}

static const UmgBackendClass cpu_backend_class = {
  .name = "cpu",
  .set_weights = cpu_set_weights,
  .plan = cpu_plan,
  .run = cpu_run,
  .free_plan = cpu_free_plan,
  .free = cpu_free,
};

UmgBackend *
umg_backend_cpu_new (GError **error)
{
  UmgCpuBackend *cpu = g_new0 (UmgCpuBackend, 1);
  guint threads = umg_cpu_threads_setting ();

  cpu->parent.klass = &cpu_backend_class;
  cpu->parent.copies_direct_inputs = FALSE;
  cpu->naive = g_strcmp0 (g_getenv ("UMGCLIP_CPU_NAIVE"), "1") == 0;
  cpu->kernels = cpu->naive ? umg_cpu_kernels_reference () : umg_cpu_kernels_best ();
  cpu->pool = umg_cpu_pool_new (threads);
  if (!cpu->naive && (cpu->gemm = umg_cpu_gemm_engine_new (threads, cpu->kernels, error)) == NULL)
    {
      cpu_free (&cpu->parent);
      return NULL;
    }
  cpu->parent.memory_bytes = sysconf (_SC_PHYS_PAGES) > 0 && sysconf (_SC_PAGESIZE) > 0
                                 ? (guint64) sysconf (_SC_PHYS_PAGES) * sysconf (_SC_PAGESIZE)
                                 : 0;
  cpu->parent.description = cpu->naive ? g_strdup_printf ("cpu (reference, %u threads)", threads)
                                       : g_strdup_printf ("cpu (%s, %s, %u threads)",
                                                          umg_cpu_gemm_engine_library (cpu->gemm),
                                                          cpu->kernels->name, threads);
  return &cpu->parent;
}
