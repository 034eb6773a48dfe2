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
  UMG_STORAGE_INPUT,  /* a direct graph input, by input index: read where the caller keeps it
                       * (the CPU backend) or where the backend copied it (Vulkan staging),
                       * never through the arena; read-only */
} UmgStorage;

/* Where an op reads or writes: an element offset into a storage. The dtype of weights and
 * constants is the tensor's own; the arena and direct inputs are 4-byte elements. */
typedef struct
{
  UmgStorage storage;
  guint index;  /* tensor index for WEIGHT and CONST, input index for INPUT, 0 for ARENA */
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
  /* A video frame, or the rectangle of it that the crop names, to the normalised network
   * input [3, out_h, out_w] exactly as umgclip_frame_to_tensor: colour conversion, bilinear
   * resize, (x / 255 - mean) / std. src[0..2] are the frame's planes (bytes, each with its
   * stride; planes the format lacks are ignored), src[3] is the crop: 4 i32 (x, y, width,
   * height) in frame pixels, read at run time so that one plan serves every box; format is a
   * UmgClipPixelFormat. */
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
  gint rows, cols, src_stride, dst_stride;
  gfloat eps;
} UmgLayernormParams;

typedef struct
{
  gint batch, rows, cols;
  gboolean causal;
} UmgSoftmaxParams;

typedef struct
{
  gint rows, cols, src_stride;
} UmgGatherParams;

typedef struct
{
  gint channels, height, width, patch, grid_h, grid_w;
} UmgIm2colParams;

typedef struct
{
  gint64 n, n_b;
} UmgAddParams;

typedef struct
{
  gint rows, cols, src_stride, dst_stride;
} UmgCopyParams;

typedef struct
{
  gint grid_h, grid_w, cols, n_boxes, output_size, sampling;
} UmgRoiAlignParams;

typedef struct
{
  gint rows, cols;
} UmgL2normParams;

typedef struct
{
  gint format, width, height, out_w, out_h;
  gint strides[3]; /* bytes per row, per plane */
  gfloat kr, kb;   /* YUV matrix, as UmgClipFrame */
  gboolean full_range;
  gfloat mean[3], std[3];
} UmgPreprocessParams;

typedef struct
{
  UmgOpType type;
  /* Sources, by op:
   *   MATMUL: a, b, bias (optional)      LAYERNORM: x, gamma, beta
   *   SOFTMAX: bias (optional)           GATHER: table, ids
   *   IM2COL: image                      ADD: a, b
   *   COPY: src                          ROI_ALIGN: map, boxes         L2NORM: x
   *   PREPROCESS: planes 0, 1, 2, crop */
  UmgRef src[4];
  UmgRef dst;
  union
  {
    UmgMatmulParams mm;
    UmgLayernormParams ln;
    UmgSoftmaxParams softmax;
    UmgGatherParams gather;
    UmgIm2colParams im2col;
    UmgAddParams add;
    UmgCopyParams copy;
    UmgRoiAlignParams roi;
    UmgL2normParams l2;
    UmgPreprocessParams preprocess;
  } p;
} UmgOp;

/* A graph input or output. Arena slots are host-visible slices of the arena: inputs are
 * written there before a run, outputs read after it. Direct inputs (UMG_STORAGE_INPUT) are
 * n_bytes read where the caller keeps them, or copied once by the backend. */
typedef struct
{
  gsize offset; /* in arena elements (arena slots) */
  gsize n_elements;
  gsize n_bytes;   /* direct inputs: exactly the bytes the caller provides */
  gboolean direct; /* a UMG_STORAGE_INPUT input */
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
/* Declare a direct input of n_bytes and return a ref to its first element. */
UmgRef umg_graph_add_direct_input (UmgGraph *graph, gsize n_bytes);
void umg_graph_push (UmgGraph *graph, const UmgOp *op);

/* The op contract, checked once for every backend at plan time: sizes positive where an op
 * needs them, every ref inside its storage (the weights as given to the backend), required
 * sources set, destinations in the arena, F16 matrices only where graph.h allows them, slots
 * inside the arena. Messages name the op by position and type. */
gboolean umg_graph_validate (const UmgGraph *graph, const UmgTensor *weights, guint n_weights,
                             GError **error);

/* Elements a PREPROCESS op reads from each plane ref (bytes rounded up to whole elements),
 * from its frame size and strides; returns the number of planes. */
guint umg_preprocess_plane_elements (const UmgPreprocessParams *pre, gsize elements[3]);

/* Elements spanned by batch × rows rows of cols elements, rows stride apart and batches
 * batch_stride apart; 0 when any count is not positive. */
gsize umg_strided_extent (gint64 batch, gint64 batch_stride, gint64 rows, gint64 stride,
                          gint64 cols);

UmgRef umg_ref_arena (gsize offset);
UmgRef umg_ref_weight (guint index);
UmgRef umg_ref_offset (UmgRef ref, gsize elements);

G_END_DECLS
