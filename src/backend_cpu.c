/* The CPU backend: the plain-C reference of every op in graph.h, with OpenBLAS for matrix
 * products. It is the oracle the Vulkan shaders are tested against and the fallback without a GPU.
 */
#include "backend.h"
#include "frame.h"
#include "region.h"
#include "umgclip.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

typedef struct
{
  UmgBackend parent;
  /* One f32 view per weight: F32 and I32 data is used in place, F16 is converted once. */
  const gfloat **weights;
  gsize *weight_elements;
  const UmgTensor *weight_tensors; /* the caller's, for names in errors */
  gfloat **converted_weights;      /* owned copies of F16 weights, NULL where used in place */
  guint n_weights;
  /* UMGCLIP_CPU_NAIVE=1: triple-loop matmul in double, to check the BLAS path against. */
  gboolean naive_matmul;
} UmgCpuBackend;

struct _UmgPlan
{
  const UmgGraph *graph; /* outlives the plan */
  gfloat *arena;         /* graph->arena_elements, 4-byte elements */
  const gfloat **consts; /* f32 views of graph->consts, like the weights */
  gfloat **converted_consts;
  /* Product of an accumulating matmul with an activation, before it is added to C:
   * the largest m × n among such ops. */
  gfloat *matmul_scratch;
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
      if (!tensor_view (&weights[i], &cpu->weights[i], &cpu->converted_weights[i], error))
        {
          clear_weights (cpu);
          return FALSE;
        }
    }
  return TRUE;
}

/* ---- plan-time validation ------------------------------------------------------------------ */

typedef struct
{
  UmgCpuBackend *cpu;
  const UmgGraph *graph;
  const UmgOp *op;
  guint position;
} OpCheck;

#define OP_ERROR(check, error, ...) op_error (check, error, g_strdup_printf (__VA_ARGS__))

static gboolean
op_error (const OpCheck *check, GError **error, gchar *message)
{
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "cpu: op %u (%s): %s", check->position,
               umg_op_name (check->op->type), message);
  g_free (message);
  return FALSE;
}

static const gchar *
storage_name (UmgStorage storage)
{
  switch (storage)
    {
    case UMG_STORAGE_ARENA:
      return "arena";
    case UMG_STORAGE_WEIGHT:
      return "weight";
    case UMG_STORAGE_CONST:
      return "const";
    }
  return "unknown storage";
}

/* extent: elements read or written from ref.offset on; 0 when the op touches nothing there. */
static gboolean
check_ref (const OpCheck *check, UmgRef ref, gsize extent, const gchar *role, gboolean writable,
           GError **error)
{
  gsize available;
  const gchar *tensor_name = NULL;

  if (umg_ref_is_none (ref))
    return OP_ERROR (check, error, "%s is required but not set", role);
  switch (ref.storage)
    {
    case UMG_STORAGE_ARENA:
      available = check->graph->arena_elements;
      break;
    case UMG_STORAGE_WEIGHT:
      if (ref.index >= check->cpu->n_weights)
        return OP_ERROR (check, error, "%s refers to weight %u but the backend holds %u weights",
                         role, ref.index, check->cpu->n_weights);
      available = check->cpu->weight_elements[ref.index];
      tensor_name = check->cpu->weight_tensors[ref.index].name;
      break;
    case UMG_STORAGE_CONST:
      if (ref.index >= check->graph->consts->len)
        return OP_ERROR (check, error, "%s refers to const %u but the graph has %u constants", role,
                         ref.index, check->graph->consts->len);
      {
        const UmgTensor *tensor = g_ptr_array_index (check->graph->consts, ref.index);
        available = tensor->n_elements;
        tensor_name = tensor->name;
      }
      break;
    default:
      return OP_ERROR (check, error, "%s has unknown storage %d", role, (gint) ref.storage);
    }
  if (writable && ref.storage != UMG_STORAGE_ARENA)
    return OP_ERROR (check, error, "%s must be in the arena, not in %s %u", role,
                     storage_name (ref.storage), ref.index);
  if (extent > 0 && (ref.offset > available || extent > available - ref.offset))
    return OP_ERROR (check, error,
                     "%s spans %" G_GSIZE_FORMAT " elements at offset %" G_GSIZE_FORMAT
                     " of %s %u%s%s%s, which holds %" G_GSIZE_FORMAT,
                     role, extent, ref.offset, storage_name (ref.storage), ref.index,
                     tensor_name ? " ('" : "", tensor_name ? tensor_name : "",
                     tensor_name ? "')" : "", available);
  return TRUE;
}

static gboolean
check_matmul (const OpCheck *check, GError **error)
{
  const UmgMatmulParams *mm = &check->op->p.mm;
  gint b_cols = mm->trans_b ? mm->k : mm->n;
  gint b_rows = mm->trans_b ? mm->n : mm->k;

  if (mm->m < 1 || mm->n < 1 || mm->k < 1 || mm->batch < 1)
    return OP_ERROR (check, error, "m %d, n %d, k %d and batch %d must all be >= 1", mm->m, mm->n,
                     mm->k, mm->batch);
  if (mm->lda < mm->k || mm->ldb < b_cols || mm->ldc < mm->n)
    return OP_ERROR (check, error,
                     "leading dimensions lda %d, ldb %d, ldc %d are smaller than the rows "
                     "they hold (k %d, %s %d, n %d)",
                     mm->lda, mm->ldb, mm->ldc, mm->k, mm->trans_b ? "k" : "n", b_cols, mm->n);
  if (mm->stride_a < 0 || mm->stride_b < 0 || mm->stride_c < 0)
    return OP_ERROR (check, error,
                     "negative batch stride (a %" G_GINT64_FORMAT ", b %" G_GINT64_FORMAT
                     ", c %" G_GINT64_FORMAT ")",
                     mm->stride_a, mm->stride_b, mm->stride_c);
  if (mm->act != UMG_ACT_NONE && mm->act != UMG_ACT_QUICK_GELU && mm->act != UMG_ACT_GELU)
    return OP_ERROR (check, error, "unknown activation %d", (gint) mm->act);
  if (!check_ref (check, check->op->src[0],
                  umg_strided_extent (mm->batch, mm->stride_a, mm->m, mm->lda, mm->k), "a", FALSE,
                  error)
      || !check_ref (check, check->op->src[1],
                     umg_strided_extent (mm->batch, mm->stride_b, b_rows, mm->ldb, b_cols), "b",
                     FALSE, error)
      || !check_ref (check, check->op->dst,
                     umg_strided_extent (mm->batch, mm->stride_c, mm->m, mm->ldc, mm->n), "c", TRUE,
                     error))
    return FALSE;
  if (!umg_ref_is_none (check->op->src[2])
      && !check_ref (check, check->op->src[2], mm->n, "bias", FALSE, error))
    return FALSE;
  return TRUE;
}

static gboolean
check_op (const OpCheck *check, GError **error)
{
  const UmgOp *op = check->op;

  switch (op->type)
    {
    case UMG_OP_MATMUL:
      return check_matmul (check, error);
    case UMG_OP_LAYERNORM:
      if (op->p.ln.rows < 0 || op->p.ln.cols < 1 || op->p.ln.src_stride < op->p.ln.cols
          || op->p.ln.dst_stride < op->p.ln.cols)
        return OP_ERROR (check, error, "bad shape: rows %d, cols %d, src_stride %d, dst_stride %d",
                         op->p.ln.rows, op->p.ln.cols, op->p.ln.src_stride, op->p.ln.dst_stride);
      return check_ref (
                 check, op->src[0],
                 umg_strided_extent (1, 0, op->p.ln.rows, op->p.ln.src_stride, op->p.ln.cols), "x",
                 FALSE, error)
             && (umg_ref_is_none (op->src[1])
                 || check_ref (check, op->src[1], op->p.ln.cols, "gamma", FALSE, error))
             && (umg_ref_is_none (op->src[2])
                 || check_ref (check, op->src[2], op->p.ln.cols, "beta", FALSE, error))
             && check_ref (
                 check, op->dst,
                 umg_strided_extent (1, 0, op->p.ln.rows, op->p.ln.dst_stride, op->p.ln.cols),
                 "dst", TRUE, error);
    case UMG_OP_SOFTMAX:
      if (op->p.softmax.batch < 0 || op->p.softmax.rows < 0 || op->p.softmax.cols < 1)
        return OP_ERROR (check, error, "bad shape: batch %d, rows %d, cols %d", op->p.softmax.batch,
                         op->p.softmax.rows, op->p.softmax.cols);
      return check_ref (check, op->dst,
                        (gsize) op->p.softmax.batch * op->p.softmax.rows * op->p.softmax.cols,
                        "dst", TRUE, error)
             && (umg_ref_is_none (op->src[0])
                 || check_ref (check, op->src[0], (gsize) op->p.softmax.rows * op->p.softmax.cols,
                               "bias", FALSE, error));
    case UMG_OP_GATHER:
      if (op->p.gather.rows < 0 || op->p.gather.cols < 1
          || op->p.gather.src_stride < op->p.gather.cols)
        return OP_ERROR (check, error, "bad shape: rows %d, cols %d, src_stride %d",
                         op->p.gather.rows, op->p.gather.cols, op->p.gather.src_stride);
      if (op->src[1].storage != UMG_STORAGE_ARENA)
        {
          const UmgTensor *tensor = op->src[1].storage == UMG_STORAGE_CONST
                                            && op->src[1].index < check->graph->consts->len
                                        ? g_ptr_array_index (check->graph->consts, op->src[1].index)
                                        : NULL;
          if (tensor == NULL || tensor->dtype != UMG_DTYPE_I32)
            return OP_ERROR (check, error, "ids must be i32, in the arena or an I32 const");
        }
      /* Row ids are only known at run time; there they are checked against the table. */
      return check_ref (check, op->src[0], op->p.gather.cols, "table", FALSE, error)
             && check_ref (check, op->src[1], op->p.gather.rows, "ids", FALSE, error)
             && check_ref (check, op->dst, (gsize) op->p.gather.rows * op->p.gather.cols, "dst",
                           TRUE, error);
    case UMG_OP_IM2COL:
      {
        gint channels = op->p.im2col.channels, patch = op->p.im2col.patch;
        if (channels < 1 || patch < 1 || op->p.im2col.grid_h < 0 || op->p.im2col.grid_w < 0
            || (gint64) op->p.im2col.grid_h * patch > op->p.im2col.height
            || (gint64) op->p.im2col.grid_w * patch > op->p.im2col.width)
          return OP_ERROR (check, error,
                           "bad shape: %d channels of %d x %d, patch %d, grid %d x %d", channels,
                           op->p.im2col.height, op->p.im2col.width, patch, op->p.im2col.grid_h,
                           op->p.im2col.grid_w);
        return check_ref (check, op->src[0],
                          (gsize) channels * op->p.im2col.height * op->p.im2col.width, "image",
                          FALSE, error)
               && check_ref (check, op->dst,
                             (gsize) op->p.im2col.grid_h * op->p.im2col.grid_w * channels * patch
                                 * patch,
                             "dst", TRUE, error);
      }
    case UMG_OP_ADD:
      if (op->p.add.n < 0 || op->p.add.n_b < 1)
        return OP_ERROR (check, error, "bad sizes: n %" G_GINT64_FORMAT ", n_b %" G_GINT64_FORMAT,
                         op->p.add.n, op->p.add.n_b);
      return check_ref (check, op->src[0], op->p.add.n, "a", FALSE, error)
             && check_ref (check, op->src[1], op->p.add.n > 0 ? op->p.add.n_b : 0, "b", FALSE,
                           error)
             && check_ref (check, op->dst, op->p.add.n, "dst", TRUE, error);
    case UMG_OP_COPY:
      if (op->p.copy.rows < 0 || op->p.copy.cols < 1 || op->p.copy.src_stride < op->p.copy.cols
          || op->p.copy.dst_stride < op->p.copy.cols)
        return OP_ERROR (check, error, "bad shape: rows %d, cols %d, src_stride %d, dst_stride %d",
                         op->p.copy.rows, op->p.copy.cols, op->p.copy.src_stride,
                         op->p.copy.dst_stride);
      return check_ref (
                 check, op->src[0],
                 umg_strided_extent (1, 0, op->p.copy.rows, op->p.copy.src_stride, op->p.copy.cols),
                 "src", FALSE, error)
             && check_ref (
                 check, op->dst,
                 umg_strided_extent (1, 0, op->p.copy.rows, op->p.copy.dst_stride, op->p.copy.cols),
                 "dst", TRUE, error);
    case UMG_OP_ROI_ALIGN:
      if (op->p.roi.grid_h < 1 || op->p.roi.grid_w < 1 || op->p.roi.cols < 1
          || op->p.roi.n_boxes < 0 || op->p.roi.output_size < 1 || op->p.roi.sampling < 1)
        return OP_ERROR (check, error,
                         "bad shape: map %d x %d x %d, %d boxes, output_size %d, sampling %d",
                         op->p.roi.grid_h, op->p.roi.grid_w, op->p.roi.cols, op->p.roi.n_boxes,
                         op->p.roi.output_size, op->p.roi.sampling);
      return check_ref (check, op->src[0],
                        (gsize) op->p.roi.grid_h * op->p.roi.grid_w * op->p.roi.cols, "map", FALSE,
                        error)
             && check_ref (check, op->src[1], (gsize) op->p.roi.n_boxes * 4, "boxes", FALSE, error)
             && check_ref (check, op->dst, (gsize) op->p.roi.n_boxes * op->p.roi.cols, "dst", TRUE,
                           error);
    case UMG_OP_L2NORM:
      if (op->p.l2.rows < 0 || op->p.l2.cols < 1)
        return OP_ERROR (check, error, "bad shape: rows %d, cols %d", op->p.l2.rows, op->p.l2.cols);
      return check_ref (check, op->src[0], (gsize) op->p.l2.rows * op->p.l2.cols, "x", FALSE, error)
             && check_ref (check, op->dst, (gsize) op->p.l2.rows * op->p.l2.cols, "dst", TRUE,
                           error);
    case UMG_OP_PREPROCESS:
      {
        gsize bytes[3], end = 0;
        guint n_planes
            = umg_frame_plane_bytes (op->p.preprocess.format, op->p.preprocess.width,
                                     op->p.preprocess.height, op->p.preprocess.strides, bytes);
        if (n_planes == 0 || op->p.preprocess.width < 1 || op->p.preprocess.height < 1
            || op->p.preprocess.out_w < 1 || op->p.preprocess.out_h < 1)
          return OP_ERROR (check, error, "bad frame: format %d, %d x %d to %d x %d",
                           op->p.preprocess.format, op->p.preprocess.width, op->p.preprocess.height,
                           op->p.preprocess.out_w, op->p.preprocess.out_h);
        for (guint i = 0; i < n_planes; i++)
          end = MAX (end, (gsize) op->p.preprocess.offsets[i] + bytes[i]);
        return check_ref (check, op->src[0], (end + 3) / 4, "frame", FALSE, error)
               && check_ref (check, op->dst,
                             3 * (gsize) op->p.preprocess.out_w * op->p.preprocess.out_h, "dst",
                             TRUE, error);
      }
    case UMG_N_OPS:
      break;
    }
  return OP_ERROR (check, error, "unknown op type %d", (gint) op->type);
}

/* ---- ops --------------------------------------------------------------------------------- */

static gfloat
activate (gfloat x, UmgActivation act)
{
  switch (act)
    {
    case UMG_ACT_QUICK_GELU:
      return x / (1.0f + expf (-1.702f * x));
    case UMG_ACT_GELU:
      return 0.5f * x * (1.0f + erff (x * (gfloat) M_SQRT1_2));
    case UMG_ACT_NONE:
      break;
    }
  return x;
}

/* c_row = act(product_row + bias), or c_row += that when accumulating. */
static void
matmul_epilogue (gfloat *c_row, const gfloat *product_row, const gfloat *bias, gint n,
                 UmgActivation act, gboolean accumulate)
{
  for (gint j = 0; j < n; j++)
    {
      gfloat value = activate (product_row[j] + (bias ? bias[j] : 0.0f), act);
      c_row[j] = accumulate ? c_row[j] + value : value;
    }
}

static void
matmul_naive (const UmgMatmulParams *mm, const gfloat *a, const gfloat *b, const gfloat *bias,
              gfloat *c)
{
  for (gint i = 0; i < mm->m; i++)
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
        matmul_epilogue (c + (gsize) i * mm->ldc + j, &product, bias ? bias + j : NULL, 1, mm->act,
                         mm->accumulate);
      }
}

static void
matmul_blas (const UmgMatmulParams *mm, const gfloat *a, const gfloat *b, const gfloat *bias,
             gfloat *c, gfloat *scratch)
{
  enum CBLAS_TRANSPOSE trans_b = mm->trans_b ? CblasTrans : CblasNoTrans;

  if (!mm->accumulate || mm->act == UMG_ACT_NONE)
    {
      /* Without an activation, accumulating is sgemm's own beta = 1. */
      cblas_sgemm (CblasRowMajor, CblasNoTrans, trans_b, mm->m, mm->n, mm->k, mm->alpha, a, mm->lda,
                   b, mm->ldb, mm->accumulate ? 1.0f : 0.0f, c, mm->ldc);
      if (bias == NULL && mm->act == UMG_ACT_NONE)
        return;
      for (gint i = 0; i < mm->m; i++)
        {
          gfloat *row = c + (gsize) i * mm->ldc;
          matmul_epilogue (row, row, bias, mm->n, mm->act, FALSE);
        }
      return;
    }
  /* The activation applies to the new product only, so it needs its own buffer. */
  cblas_sgemm (CblasRowMajor, CblasNoTrans, trans_b, mm->m, mm->n, mm->k, mm->alpha, a, mm->lda, b,
               mm->ldb, 0.0f, scratch, mm->n);
  for (gint i = 0; i < mm->m; i++)
    matmul_epilogue (c + (gsize) i * mm->ldc, scratch + (gsize) i * mm->n, bias, mm->n, mm->act,
                     TRUE);
}

static void
cpu_matmul (const UmgMatmulParams *mm, const gfloat *a, const gfloat *b, const gfloat *bias,
            gfloat *c, gfloat *scratch, gboolean naive)
{
  for (gint batch = 0; batch < mm->batch; batch++)
    {
      const gfloat *a_batch = a + batch * mm->stride_a;
      const gfloat *b_batch = b + batch * mm->stride_b;
      gfloat *c_batch = c + batch * mm->stride_c;
      if (naive)
        matmul_naive (mm, a_batch, b_batch, bias, c_batch);
      else
        matmul_blas (mm, a_batch, b_batch, bias, c_batch, scratch);
    }
}

static void
cpu_layernorm (const UmgOp *op, const gfloat *x, const gfloat *gamma, const gfloat *beta,
               gfloat *dst)
{
  gint cols = op->p.ln.cols;

  for (gint r = 0; r < op->p.ln.rows; r++)
    {
      const gfloat *in = x + (gsize) r * op->p.ln.src_stride;
      gfloat *out = dst + (gsize) r * op->p.ln.dst_stride;
      gdouble mean = 0.0, variance = 0.0, inv_std;

      for (gint c = 0; c < cols; c++)
        mean += in[c];
      mean /= cols;
      for (gint c = 0; c < cols; c++)
        variance += (in[c] - mean) * (in[c] - mean);
      /* population variance, as torch's layer_norm */
      variance /= cols;
      inv_std = 1.0 / sqrt (variance + op->p.ln.eps);
      for (gint c = 0; c < cols; c++)
        {
          gdouble normalised = (in[c] - mean) * inv_std;
          out[c] = (gfloat) (normalised * (gamma ? gamma[c] : 1.0f) + (beta ? beta[c] : 0.0f));
        }
    }
}

static void
cpu_softmax (const UmgOp *op, const gfloat *bias, gfloat *x)
{
  gint rows = op->p.softmax.rows, cols = op->p.softmax.cols;

  for (gint batch = 0; batch < op->p.softmax.batch; batch++)
    for (gint r = 0; r < rows; r++)
      {
        gfloat *row = x + ((gsize) batch * rows + r) * cols;
        gint visible = op->p.softmax.causal ? MIN (r + 1, cols) : cols;
        gfloat max = -INFINITY;
        gdouble sum = 0.0;

        if (bias != NULL)
          for (gint c = 0; c < cols; c++)
            row[c] += bias[(gsize) r * cols + c];
        for (gint c = 0; c < visible; c++)
          max = MAX (max, row[c]);
        /* A row masked out entirely by -inf biases gives zeros rather than NaN. */
        if (max == -INFINITY)
          visible = 0;
        for (gint c = 0; c < visible; c++)
          {
            row[c] = expf (row[c] - max);
            sum += row[c];
          }
        for (gint c = 0; c < visible; c++)
          row[c] = (gfloat) (row[c] / sum);
        for (gint c = visible; c < cols; c++)
          row[c] = 0.0f;
      }
}

static gboolean
cpu_gather (const UmgOp *op, const gfloat *table, gsize table_elements, const gint32 *ids,
            gfloat *dst, guint position, GError **error)
{
  gint cols = op->p.gather.cols;

  for (gint r = 0; r < op->p.gather.rows; r++)
    {
      gint32 id = ids[r];
      gsize start = (gsize) id * op->p.gather.src_stride;
      if (id < 0 || start > table_elements || (gsize) cols > table_elements - start)
        {
          g_set_error (
              error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
              "cpu: op %u (gather): id %d at row %d is outside the table of %" G_GSIZE_FORMAT
              " rows",
              position, id, r, table_elements / op->p.gather.src_stride);
          return FALSE;
        }
      memcpy (dst + (gsize) r * cols, table + start, cols * sizeof (gfloat));
    }
  return TRUE;
}

static void
cpu_im2col (const UmgOp *op, const gfloat *image, gfloat *dst)
{
  gint patch = op->p.im2col.patch, width = op->p.im2col.width;
  gsize plane = (gsize) op->p.im2col.height * width;
  gsize row_length = (gsize) op->p.im2col.channels * patch * patch;

  for (gint gy = 0; gy < op->p.im2col.grid_h; gy++)
    for (gint gx = 0; gx < op->p.im2col.grid_w; gx++)
      {
        gfloat *out = dst + ((gsize) gy * op->p.im2col.grid_w + gx) * row_length;
        for (gint channel = 0; channel < op->p.im2col.channels; channel++)
          for (gint ky = 0; ky < patch; ky++)
            {
              const gfloat *in = image + channel * plane + (gsize) (gy * patch + ky) * width
                                 + (gsize) gx * patch;
              memcpy (out, in, patch * sizeof (gfloat));
              out += patch;
            }
      }
}

static void
cpu_add (const UmgOp *op, const gfloat *a, const gfloat *b, gfloat *dst)
{
  gint64 n_b = op->p.add.n_b;

  for (gint64 i = 0; i < op->p.add.n; i++)
    dst[i] = a[i] + b[i % n_b];
}

static void
cpu_copy (const UmgOp *op, const gfloat *src, gfloat *dst)
{
  for (gint r = 0; r < op->p.copy.rows; r++)
    memmove (dst + (gsize) r * op->p.copy.dst_stride, src + (gsize) r * op->p.copy.src_stride,
             op->p.copy.cols * sizeof (gfloat));
}

static void
cpu_roi_align (const UmgOp *op, const gfloat *map, const gfloat *boxes, gfloat *dst)
{
  umg_roi_align (map, op->p.roi.grid_h, op->p.roi.grid_w, op->p.roi.cols, boxes, op->p.roi.n_boxes,
                 op->p.roi.output_size, op->p.roi.sampling, dst);
}

static void
cpu_l2norm (const UmgOp *op, const gfloat *x, gfloat *dst)
{
  gint cols = op->p.l2.cols;

  for (gint r = 0; r < op->p.l2.rows; r++)
    {
      const gfloat *in = x + (gsize) r * cols;
      gfloat *out = dst + (gsize) r * cols;
      gdouble squares = 0.0, scale;
      for (gint c = 0; c < cols; c++)
        squares += (gdouble) in[c] * in[c];
      scale = 1.0 / MAX (sqrt (squares), 1e-12);
      for (gint c = 0; c < cols; c++)
        out[c] = (gfloat) (in[c] * scale);
    }
}

/* ---- plan and run ------------------------------------------------------------------------ */

static void
cpu_free_plan (UmgBackend *backend, UmgPlan *plan)
{
  if (plan == NULL)
    return;
  if (plan->converted_consts != NULL)
    for (guint i = 0; i < plan->graph->consts->len; i++)
      g_free (plan->converted_consts[i]);
  g_free (plan->converted_consts);
  g_free (plan->consts);
  g_free (plan->arena);
  g_free (plan->matmul_scratch);
  g_free (plan);
}

static gboolean
check_slots (const UmgGraph *graph, GArray *slots, const gchar *kind, GError **error)
{
  for (guint i = 0; i < slots->len; i++)
    {
      const UmgSlot *slot = &g_array_index (slots, UmgSlot, i);
      if (slot->offset > graph->arena_elements
          || slot->n_elements > graph->arena_elements - slot->offset)
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                       "cpu: %s %u (%" G_GSIZE_FORMAT " elements at %" G_GSIZE_FORMAT
                       ") lies outside the arena of %" G_GSIZE_FORMAT " elements",
                       kind, i, slot->n_elements, slot->offset, graph->arena_elements);
          return FALSE;
        }
    }
  return TRUE;
}

static UmgPlan *
cpu_plan (UmgBackend *backend, const UmgGraph *graph, GError **error)
{
  UmgCpuBackend *cpu = (UmgCpuBackend *) backend;
  UmgPlan *plan;
  gsize scratch_elements = 0;

  for (guint i = 0; i < graph->ops->len; i++)
    {
      const UmgOp *op = &g_array_index (graph->ops, UmgOp, i);
      OpCheck check = { cpu, graph, op, i };
      if (!check_op (&check, error))
        return NULL;
      if (op->type == UMG_OP_MATMUL && op->p.mm.accumulate && op->p.mm.act != UMG_ACT_NONE)
        scratch_elements = MAX (scratch_elements, (gsize) op->p.mm.m * op->p.mm.n);
    }
  if (!check_slots (graph, graph->inputs, "input", error)
      || !check_slots (graph, graph->outputs, "output", error))
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
  if (scratch_elements > 0)
    plan->matmul_scratch = g_try_new (gfloat, scratch_elements);
  if (plan->arena == NULL || (scratch_elements > 0 && plan->matmul_scratch == NULL))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE,
                   "cpu: out of memory allocating an arena of %" G_GSIZE_FORMAT " elements",
                   graph->arena_elements);
      cpu_free_plan (backend, plan);
      return NULL;
    }
  return plan;
}

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
    }
  return 0;
}

static gboolean
execute_op (UmgCpuBackend *cpu, UmgPlan *plan, const UmgOp *op, guint position, GError **error)
{
  const gfloat *src0 = resolve (cpu, plan, op->src[0]);
  const gfloat *src1 = resolve (cpu, plan, op->src[1]);
  const gfloat *src2 = resolve (cpu, plan, op->src[2]);
  gfloat *dst = plan->arena + op->dst.offset;

  switch (op->type)
    {
    case UMG_OP_MATMUL:
      cpu_matmul (&op->p.mm, src0, src1, src2, dst, plan->matmul_scratch, cpu->naive_matmul);
      return TRUE;
    case UMG_OP_LAYERNORM:
      cpu_layernorm (op, src0, src1, src2, dst);
      return TRUE;
    case UMG_OP_SOFTMAX:
      cpu_softmax (op, src0, dst);
      return TRUE;
    case UMG_OP_GATHER:
      return cpu_gather (op, src0, table_elements (cpu, plan, op->src[0]), (const gint32 *) src1,
                         dst, position, error);
    case UMG_OP_IM2COL:
      cpu_im2col (op, src0, dst);
      return TRUE;
    case UMG_OP_ADD:
      cpu_add (op, src0, src1, dst);
      return TRUE;
    case UMG_OP_COPY:
      cpu_copy (op, src0, dst);
      return TRUE;
    case UMG_OP_ROI_ALIGN:
      cpu_roi_align (op, src0, src1, dst);
      return TRUE;
    case UMG_OP_L2NORM:
      cpu_l2norm (op, src0, dst);
      return TRUE;
    case UMG_OP_PREPROCESS:
      {
        const __typeof__ (op->p.preprocess) *pre = &op->p.preprocess;
        const guint8 *bytes = (const guint8 *) src0;
        UmgClipFrame frame = {
          .format = pre->format,
          .width = pre->width,
          .height = pre->height,
          .kr = pre->kr,
          .kb = pre->kb,
          .full_range = pre->full_range,
        };
        for (gint i = 0; i < 3; i++)
          {
            frame.planes[i] = bytes + pre->offsets[i];
            frame.strides[i] = pre->strides[i];
          }
        return umgclip_frame_to_tensor (&frame, pre->out_w, pre->out_h, pre->mean, pre->std, dst,
                                        error);
      }
    case UMG_N_OPS:
      break;
    }
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "cpu: op %u has unknown type %d",
               position, (gint) op->type);
  return FALSE;
}

static gboolean
cpu_run (UmgBackend *backend, UmgPlan *plan, const void *const *inputs, void *const *outputs,
         GError **error)
{
  UmgCpuBackend *cpu = (UmgCpuBackend *) backend;
  const UmgGraph *graph = plan->graph;

  for (guint i = 0; i < graph->inputs->len; i++)
    {
      const UmgSlot *slot = &g_array_index (graph->inputs, UmgSlot, i);
      memcpy (plan->arena + slot->offset, inputs[i], slot->n_elements * 4);
    }
  for (guint i = 0; i < graph->ops->len; i++)
    if (!execute_op (cpu, plan, &g_array_index (graph->ops, UmgOp, i), i, error))
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

  cpu->parent.klass = &cpu_backend_class;
  cpu->parent.description = g_strdup ("cpu (OpenBLAS)");
  cpu->naive_matmul = g_strcmp0 (g_getenv ("UMGCLIP_CPU_NAIVE"), "1") == 0;
  return &cpu->parent;
}
