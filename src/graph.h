/* The op graph: the list of ops one forward pass executes, with every tensor placed either in
 * the model's weights, in the graph's own constants or in one activation arena. Graphs are
 * built once per (model, input size, outputs) and handed to a backend, which runs them. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum
{
  UMG_DTYPE_F32,
  UMG_DTYPE_F16,
  UMG_DTYPE_I32,
} UmgDtype;

gsize umg_dtype_size (UmgDtype dtype);

/* IEEE half <-> single, round to nearest even. */
gfloat umg_half_to_float (guint16 half);
guint16 umg_float_to_half (gfloat value);

/* A tensor held by the host: a model weight or a graph constant. Data is row-major.
 * Graphs read weights of two or more dimensions only as B of MATMUL or as the table of
 * GATHER; every other weight or constant source is one-dimensional or F32, so a backend may
 * keep large matrices in F16 and everything else in F32. */
typedef struct
{
  gchar *name;
  UmgDtype dtype; /* F32 or F16 */
  guint n_dims;
  gsize shape[4];
  gsize n_elements;
  const void *data; /* points into a mapped file or into owned */
  gpointer owned;   /* freed with the tensor, may be NULL */
} UmgTensor;

void umg_tensor_clear (UmgTensor *tensor);

typedef enum
{
  UMG_STORAGE_ARENA,  /* activation arena: 4-byte elements (f32 or i32) */
  UMG_STORAGE_WEIGHT, /* model weight, by index */
  UMG_STORAGE_CONST,  /* graph constant, by index */
} UmgStorage;

/* Where an op reads or writes: an element offset into a storage. The dtype of weights and
 * constants is the tensor's own; the arena is always 4-byte elements. */
typedef struct
{
  UmgStorage storage;
  guint index;  /* tensor index for WEIGHT and CONST, 0 for ARENA */
  gsize offset; /* in elements */
} UmgRef;

#define UMG_REF_NONE ((UmgRef){ UMG_STORAGE_ARENA, G_MAXUINT, 0 })
gboolean umg_ref_is_none (UmgRef ref);

typedef enum
{
  UMG_ACT_NONE,
  UMG_ACT_QUICK_GELU, /* x * sigmoid(1.702 x) */
  UMG_ACT_GELU,       /* exact: 0.5 x (1 + erf(x / sqrt 2)) */
} UmgActivation;

typedef enum
{
  /* C[b] = act(alpha * A[b] · op(B[b]) + bias), or C[b] += that when accumulate.
   * A: [m, k] rows lda apart (arena). B: trans_b ? [n, k] rows ldb apart : [k, n] rows ldb
   * apart (arena or weight, f32 or f16). bias: [n] or none. C: [m, n] rows ldc apart.
   * Batch b offsets A, B, C by stride_a, stride_b, stride_c elements. */
  UMG_OP_MATMUL,
  /* dst row r = (x_r - mean) / sqrt(var + eps) * gamma + beta, rows src_stride / dst_stride
   * apart, cols elements each. */
  UMG_OP_LAYERNORM,
  /* In place on dst: batch × rows × cols, contiguous. x += bias[r, c] when bias is set
   * (a rows × cols matrix shared by every batch); with causal, columns c > r are masked;
   * then every row is replaced by its softmax. */
  UMG_OP_SOFTMAX,
  /* dst row r = table row ids[r] (i32 in the arena), cols elements; table rows are
   * src_stride apart. */
  UMG_OP_GATHER,
  /* image [channels, height, width] (arena) to patches [grid_h * grid_w, channels * patch²],
   * columns ordered (channel, ky, kx) as a conv weight [out, channels, patch, patch]. */
  UMG_OP_IM2COL,
  /* dst[i] = a[i] + b[i % n_b] for i < n: broadcast add, in place when dst == a. */
  UMG_OP_ADD,
  /* dst row r (dst_stride apart) = src row r (src_stride apart), cols elements, rows rows. */
  UMG_OP_COPY,
  /* Region features: for each box (x1, y1, x2, y2 in feature-map cells, already shifted by
   * -0.5 as aligned RoI-Align does; f32 in the arena), the mean of output_size² bins, each the
   * mean of sampling² bilinear samples of the map [grid_h, grid_w, cols]. dst [n_boxes, cols]. */
  UMG_OP_ROI_ALIGN,
  /* dst row r = x_r / max(‖x_r‖, 1e-12), in place allowed. */
  UMG_OP_L2NORM,
  /* A video frame to the normalised network input [3, out_h, out_w] exactly as
   * umgclip_frame_to_tensor: colour conversion, bilinear resize, (x / 255 - mean) / std. The
   * frame's bytes lie in the arena from src's first element, each plane at its byte offset
   * with its stride; format is a UmgClipPixelFormat. */
  UMG_OP_PREPROCESS,
  UMG_N_OPS
} UmgOpType;

const gchar *umg_op_name (UmgOpType type);

typedef struct
{
  gint m, n, k, batch;
  gint lda, ldb, ldc;
  gint64 stride_a, stride_b, stride_c;
  gboolean trans_b;
  gboolean accumulate;
  UmgActivation act;
  gfloat alpha;
} UmgMatmulParams;

typedef struct
{
  UmgOpType type;
  /* Sources, by op:
   *   MATMUL: a, b, bias (optional)      LAYERNORM: x, gamma, beta
   *   SOFTMAX: bias (optional)           GATHER: table, ids
   *   IM2COL: image                      ADD: a, b
   *   COPY: src                          ROI_ALIGN: map, boxes         L2NORM: x
   *   PREPROCESS: frame bytes */
  UmgRef src[3];
  UmgRef dst;
  union
  {
    UmgMatmulParams mm;
    struct
    {
      gint rows, cols, src_stride, dst_stride;
      gfloat eps;
    } ln;
    struct
    {
      gint batch, rows, cols;
      gboolean causal;
    } softmax;
    struct
    {
      gint rows, cols, src_stride;
    } gather;
    struct
    {
      gint channels, height, width, patch, grid_h, grid_w;
    } im2col;
    struct
    {
      gint64 n, n_b;
    } add;
    struct
    {
      gint rows, cols, src_stride, dst_stride;
    } copy;
    struct
    {
      gint grid_h, grid_w, cols, n_boxes, output_size, sampling;
    } roi;
    struct
    {
      gint rows, cols;
    } l2;
    struct
    {
      gint format, width, height, out_w, out_h;
      gint strides[3], offsets[3]; /* bytes, per plane */
      gfloat kr, kb;               /* YUV matrix, as UmgClipFrame */
      gboolean full_range;
      gfloat mean[3], std[3];
    } preprocess;
  } p;
} UmgOp;

/* A host-visible slice of the arena: graph inputs are written there before a run, outputs
 * read after it. */
typedef struct
{
  gsize offset; /* in arena elements */
  gsize n_elements;
} UmgSlot;

typedef struct
{
  GArray *ops;          /* UmgOp */
  GPtrArray *consts;    /* UmgTensor *, owned */
  gsize arena_elements; /* size of the arena, in 4-byte elements */
  GArray *inputs;       /* UmgSlot */
  GArray *outputs;      /* UmgSlot */
} UmgGraph;

UmgGraph *umg_graph_new (void);
void umg_graph_free (UmgGraph *graph);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (UmgGraph, umg_graph_free)

/* Reserve n elements of the arena (16-element aligned) and return a ref to them. */
UmgRef umg_graph_alloc (UmgGraph *graph, gsize n_elements);
/* Take ownership of a constant tensor and return a ref to it. */
UmgRef umg_graph_add_const (UmgGraph *graph, UmgTensor *tensor);
/* Declare an arena slice as input or output; returns its index among inputs / outputs. */
guint umg_graph_add_input (UmgGraph *graph, UmgRef ref, gsize n_elements);
guint umg_graph_add_output (UmgGraph *graph, UmgRef ref, gsize n_elements);
void umg_graph_push (UmgGraph *graph, const UmgOp *op);

/* Elements spanned by batch × rows rows of cols elements, rows stride apart and batches
 * batch_stride apart; 0 when any count is not positive. */
gsize umg_strided_extent (gint64 batch, gint64 batch_stride, gint64 rows, gint64 stride,
                          gint64 cols);

UmgRef umg_ref_arena (gsize offset);
UmgRef umg_ref_weight (guint index);
UmgRef umg_ref_offset (UmgRef ref, gsize elements);

G_END_DECLS
