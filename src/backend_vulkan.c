/* The Vulkan backend: weights uploaded once to device-local memory, and per graph one arena,
 * one descriptor set per op and ONE command buffer recorded at plan time and submitted per run.
 * Each op of graph.h is one compute shader from shaders/. */
#include "backend.h"
#include "frame.h"
#include "umgclip.h"
#include "vk_context.h"

#include <string.h>

/* The generated headers live in the build tree's shaders/ folder, which the build tree's src/
 * folder (always on the include path) reaches as ../shaders. */
#include "shader_add.h"
#include "shader_copy.h"
#include "shader_gather.h"
#include "shader_gather_f16.h"
#include "shader_im2col.h"
#include "shader_l2norm.h"
#include "shader_layernorm.h"
#include "shader_matmul.h"
#include "shader_matmul_f16.h"
#include "shader_preprocess.h"
#include "shader_roi_align.h"
#include "shader_softmax.h"

/* Push constants, laid out exactly as the Params block of the shader of the same name. */
typedef struct
{
  guint32 m, n, k;
  guint32 lda, ldb, ldc;
  guint32 stride_a, stride_b, stride_c;
  guint32 offset_a, offset_b, offset_bias, offset_c;
  guint32 batch_base;
  gfloat alpha;
} MatmulPush;

typedef struct
{
  guint32 rows, cols, src_stride, dst_stride;
  guint32 offset_x, offset_gamma, offset_beta, offset_dst;
  gfloat eps;
} LayernormPush;

typedef struct
{
  guint32 total_rows, rows, cols;
  guint32 offset_x, offset_bias;
} SoftmaxPush;

typedef struct
{
  guint32 rows, cols, src_stride;
  guint32 table_rows;
  guint32 offset_table, offset_ids, offset_dst;
} GatherPush;

typedef struct
{
  guint32 channels, height, width, patch_size, grid_h, grid_w;
  guint32 offset_image, offset_dst;
} Im2colPush;

typedef struct
{
  guint32 n, n_b;
  guint32 offset_a, offset_b, offset_dst;
} AddPush;

typedef struct
{
  guint32 rows, cols, src_stride, dst_stride;
  guint32 offset_src, offset_dst;
} CopyPush;

typedef struct
{
  guint32 grid_h, grid_w, cols, n_boxes, output_size, sampling;
  guint32 offset_map, offset_boxes, offset_dst;
} RoiAlignPush;

typedef struct
{
  guint32 rows, cols;
  guint32 offset_x, offset_dst;
} L2normPush;

typedef struct
{
  guint32 format, width, height, out_w, out_h;
  guint32 strides[3], planes[3];
  guint32 offset_frame, offset_dst, offset_crop;
  gfloat gain[3], bias[3];
  UmgYuvCoefficients yuv;
} PreprocessPush;

typedef enum
{
  SHADER_MATMUL,
  SHADER_MATMUL_F16,
  SHADER_LAYERNORM,
  SHADER_SOFTMAX,
  SHADER_GATHER,
  SHADER_GATHER_F16,
  SHADER_IM2COL,
  SHADER_ADD,
  SHADER_COPY,
  SHADER_ROI_ALIGN,
  SHADER_L2NORM,
  SHADER_PREPROCESS,
} ShaderId;

#define SHADER(variable, bindings, params)                                                         \
  {                                                                                                \
#variable, variable##_spv, sizeof(variable##_spv), bindings, sizeof(params)                    \
  }

static const UmgVkShader shaders[] = {
  [SHADER_MATMUL] = SHADER (shader_matmul, 4, MatmulPush),
  [SHADER_MATMUL_F16] = SHADER (shader_matmul_f16, 4, MatmulPush),
  [SHADER_LAYERNORM] = SHADER (shader_layernorm, 4, LayernormPush),
  [SHADER_SOFTMAX] = SHADER (shader_softmax, 2, SoftmaxPush),
  [SHADER_GATHER] = SHADER (shader_gather, 3, GatherPush),
  [SHADER_GATHER_F16] = SHADER (shader_gather_f16, 3, GatherPush),
  [SHADER_IM2COL] = SHADER (shader_im2col, 2, Im2colPush),
  [SHADER_ADD] = SHADER (shader_add, 3, AddPush),
  [SHADER_COPY] = SHADER (shader_copy, 2, CopyPush),
  [SHADER_ROI_ALIGN] = SHADER (shader_roi_align, 3, RoiAlignPush),
  [SHADER_L2NORM] = SHADER (shader_l2norm, 2, L2normPush),
  [SHADER_PREPROCESS] = SHADER (shader_preprocess, 3, PreprocessPush),
};

#define MAX_BINDINGS 4
#define ELEMENTWISE_WORKGROUP 256
/* Weights are packed into buffers of at most this size, each its own allocation. */
#define WEIGHT_CHUNK_BYTES (256u << 20)
#define UPLOAD_STAGING_BYTES (64u << 20)

/* A tensor as the device holds it: element 0 at byte_offset inside buffer. */
typedef struct
{
  const gchar *name;
  VkBuffer buffer;
  VkDeviceSize buffer_size;
  VkDeviceSize byte_offset;
  UmgDtype dtype;
  gsize n_elements;
} StoredTensor;

typedef struct
{
  UmgBackend parent;
  UmgVkContext *ctx;
  GArray *weight_chunks; /* UmgVkBuffer */
  StoredTensor *weights;
  const UmgTensor *weight_tensors; /* the caller's, for the graph contract */
  guint n_weights;
  /* the matmul variant without shared memory, for CPU implementations of Vulkan */
  gboolean direct_matmul;
  GMutex run_lock;
} VulkanBackend;

struct _UmgPlan
{
  UmgVkBuffer arena;
  UmgVkBuffer consts;
  StoredTensor *const_tensors;
  guint n_consts;
  gsize arena_elements;
  UmgVkBuffer staging;      /* inputs, then outputs; direct inputs are read from here */
  GArray *inputs, *outputs; /* UmgSlot */
  VkDeviceSize *input_staging_offsets, *output_staging_offsets;
  VkDescriptorPool descriptor_pool;
  VkCommandBuffer cmd;
  /* Recorded per run when direct inputs lie in device memory: their copies into staging. */
  VkCommandBuffer prologue;
  VkFence fence;
  guint n_dispatches, n_barriers;
};

static VkDeviceSize
align_up (VkDeviceSize value, VkDeviceSize alignment)
{
  return (value + alignment - 1) / alignment * alignment;
}

static VkDeviceSize
tensor_alignment (UmgVkContext *ctx)
{
  return MAX (256, ctx->properties.limits.minStorageBufferOffsetAlignment);
}

/* F16 stays F16 only for matrices, and only when shaders can read 16-bit storage. */
static UmgDtype
stored_dtype (UmgVkContext *ctx, const UmgTensor *tensor, gboolean keep_f16_matrices)
{
  if (tensor->dtype == UMG_DTYPE_I32)
    return UMG_DTYPE_I32;
  if (tensor->dtype == UMG_DTYPE_F16 && tensor->n_dims >= 2 && keep_f16_matrices
      && ctx->has_16bit_storage)
    return UMG_DTYPE_F16;
  return UMG_DTYPE_F32;
}

/* Writes elements [first, first + count) of tensor into out, converted to the stored dtype. */
static void
convert_elements (const UmgTensor *tensor, UmgDtype to, gsize first, gsize count, guint8 *out)
{
  gsize from_size = umg_dtype_size (tensor->dtype);
  const guint8 *src = (const guint8 *) tensor->data + first * from_size;

  if (tensor->dtype == to)
    memcpy (out, src, count * from_size);
  else
    {
      const guint16 *halves = (const guint16 *) src;
      gfloat *floats = (gfloat *) out;
      for (gsize i = 0; i < count; i++)
        floats[i] = umg_half_to_float (halves[i]);
    }
}

static gboolean
check_tensor (const UmgTensor *tensor, const gchar *kind, guint index, GError **error)
{
  if (tensor->dtype != UMG_DTYPE_F32 && tensor->dtype != UMG_DTYPE_F16
      && tensor->dtype != UMG_DTYPE_I32)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "%s %u (%s): unknown dtype %d",
                   kind, index, tensor->name != NULL ? tensor->name : "unnamed",
                   (gint) tensor->dtype);
      return FALSE;
    }
  if (tensor->n_elements > 0 && tensor->data == NULL)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "%s %u (%s) has no data", kind,
                   index, tensor->name != NULL ? tensor->name : "unnamed");
      return FALSE;
    }
  return TRUE;
}

/* Places tensors into buffers of at most chunk_limit bytes (a bigger tensor gets its own),
 * allocates them, and uploads every tensor through staging. */
static gboolean
upload_tensors (UmgVkContext *ctx, const UmgTensor *const *tensors, guint n_tensors,
                const gchar *kind, gboolean keep_f16_matrices, VkDeviceSize chunk_limit,
                GArray *chunks, StoredTensor *stored, GError **error)
{
  VkDeviceSize alignment = tensor_alignment (ctx);
  g_autofree guint *chunk_of = g_new0 (guint, MAX (n_tensors, 1));
  g_autoptr (GArray) chunk_sizes = g_array_new (FALSE, TRUE, sizeof (VkDeviceSize));
  VkDeviceSize largest = 0;
  UmgVkUploader uploader;
  gboolean ok = TRUE;

  for (guint i = 0; i < n_tensors; i++)
    {
      const UmgTensor *tensor = tensors[i];
      VkDeviceSize size, *current;

      if (!check_tensor (tensor, kind, i, error))
        return FALSE;
      stored[i].name = tensor->name;
      stored[i].dtype = stored_dtype (ctx, tensor, keep_f16_matrices);
      stored[i].n_elements = tensor->n_elements;
      size = align_up (MAX (tensor->n_elements, 1) * umg_dtype_size (stored[i].dtype), 16);
      largest = MAX (largest, size);
      if (ctx->max_allocation_size != 0 && size > ctx->max_allocation_size)
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE,
                       "%s %s needs %" G_GUINT64_FORMAT " bytes, more than the Vulkan "
                       "device's largest allocation (%" G_GUINT64_FORMAT " bytes)",
                       kind, tensor->name, (guint64) size, (guint64) ctx->max_allocation_size);
          return FALSE;
        }
      current = chunk_sizes->len > 0
                    ? &g_array_index (chunk_sizes, VkDeviceSize, chunk_sizes->len - 1)
                    : NULL;
      if (current == NULL || align_up (*current, alignment) + size > chunk_limit)
        {
          VkDeviceSize empty = 0;
          g_array_append_val (chunk_sizes, empty);
          current = &g_array_index (chunk_sizes, VkDeviceSize, chunk_sizes->len - 1);
        }
      chunk_of[i] = chunks->len + chunk_sizes->len - 1;
      stored[i].byte_offset = align_up (*current, alignment);
      *current = stored[i].byte_offset + size;
    }

  for (guint c = 0; c < chunk_sizes->len; c++)
    {
      UmgVkBuffer buffer;
      g_autofree gchar *what = g_strdup_printf ("%s buffer %u", kind, c);
      if (!umg_vk_buffer_init (ctx, &buffer, g_array_index (chunk_sizes, VkDeviceSize, c), FALSE,
                               what, error))
        return FALSE;
      g_array_append_val (chunks, buffer);
    }
  for (guint i = 0; i < n_tensors; i++)
    {
      const UmgVkBuffer *chunk = &g_array_index (chunks, UmgVkBuffer, chunk_of[i]);
      stored[i].buffer = chunk->buffer;
      stored[i].buffer_size = chunk->size;
    }
  if (n_tensors == 0)
    return TRUE;

  if (!umg_vk_uploader_init (&uploader, ctx, MIN (largest, UPLOAD_STAGING_BYTES), error))
    {
      umg_vk_uploader_clear (&uploader);
      return FALSE;
    }
  for (guint i = 0; ok && i < n_tensors; i++)
    {
      gsize element_size = umg_dtype_size (stored[i].dtype);
      gsize per_piece = uploader.staging.size / element_size;
      for (gsize first = 0; ok && first < tensors[i]->n_elements; first += per_piece)
        {
          gsize count = MIN (per_piece, tensors[i]->n_elements - first);
          guint8 *dst = umg_vk_uploader_reserve (&uploader, stored[i].buffer,
                                                 stored[i].byte_offset + first * element_size,
                                                 count * element_size, error);
          if (dst == NULL)
            ok = FALSE;
          else
            convert_elements (tensors[i], stored[i].dtype, first, count, dst);
        }
    }
  ok = ok && umg_vk_uploader_flush (&uploader, error);
  umg_vk_uploader_clear (&uploader);
  return ok;
}

static void
free_weights (VulkanBackend *self)
{
  if (self->weight_chunks != NULL)
    {
      for (guint i = 0; i < self->weight_chunks->len; i++)
        umg_vk_buffer_clear (self->ctx, &g_array_index (self->weight_chunks, UmgVkBuffer, i));
      g_array_set_size (self->weight_chunks, 0);
    }
  g_clear_pointer (&self->weights, g_free);
  self->weight_tensors = NULL;
  self->n_weights = 0;
}

/* Plans made before a second set_weights refer to the old buffers and must be freed first. */
static gboolean
vulkan_set_weights (UmgBackend *backend, const UmgTensor *weights, guint n_weights, GError **error)
{
  VulkanBackend *self = (VulkanBackend *) backend;
  g_autofree const UmgTensor **pointers = g_new0 (const UmgTensor *, MAX (n_weights, 1));
  VkDeviceSize chunk_limit = WEIGHT_CHUNK_BYTES;

  free_weights (self);
  for (guint i = 0; i < n_weights; i++)
    pointers[i] = &weights[i];
  if (self->ctx->max_allocation_size != 0)
    chunk_limit = MIN (chunk_limit, self->ctx->max_allocation_size);
  self->weights = g_new0 (StoredTensor, MAX (n_weights, 1));
  self->weight_tensors = weights;
  self->n_weights = n_weights;
  if (!upload_tensors (self->ctx, pointers, n_weights, "weight", TRUE, chunk_limit,
                       self->weight_chunks, self->weights, error))
    {
      free_weights (self);
      return FALSE;
    }
  return umg_vk_context_check_messages (self->ctx, error);
}

/* --- recording ------------------------------------------------------------------------- */

typedef struct
{
  UmgRef ref;
  gsize extent;           /* elements from ref.offset the shader may touch */
  const gchar *role;      /* for errors: "A", "B", "bias", "dst", ... */
  gboolean reads, writes; /* for barriers; both FALSE for placeholder bindings */
  gboolean may_be_f16;
} BindingRequest;

static BindingRequest
input_binding (UmgRef ref, gsize extent, const gchar *role)
{
  return (BindingRequest){ .ref = ref, .extent = extent, .role = role, .reads = TRUE };
}

/* matmul B and gather tables: the variant reading 16-bit storage is picked when needed */
static BindingRequest
matrix_binding (UmgRef ref, gsize extent, const gchar *role)
{
  return (BindingRequest){
    .ref = ref,
    .extent = extent,
    .role = role,
    .reads = TRUE,
    .may_be_f16 = TRUE,
  };
}

static BindingRequest
output_binding (UmgRef ref, gsize extent, const gchar *role, gboolean also_reads)
{
  return (BindingRequest){
    .ref = ref,
    .extent = extent,
    .role = role,
    .reads = also_reads,
    .writes = TRUE,
  };
}

/* an optional source that is absent: the binding only has to be valid */
static BindingRequest
unused_binding (UmgRef ref)
{
  return (BindingRequest){ .ref = ref, .extent = 0, .role = "unused binding" };
}

typedef struct
{
  VkDescriptorBufferInfo info;
  guint32 element_offset; /* of ref.offset inside the bound window */
  UmgDtype dtype;
} Binding;

typedef struct
{
  gsize start, end;
} Interval;

typedef struct
{
  VulkanBackend *backend;
  UmgPlan *plan;
  VkCommandBuffer cmd;
  VkPipeline bound_pipeline;
  /* arena ranges read and written since the last barrier */
  GArray *pending_reads, *pending_writes;
} Recorder;

static gboolean fail_op (GError **error, guint op_index, const UmgOp *op, const gchar *format, ...)
    G_GNUC_PRINTF (4, 5);

static gboolean
fail_op (GError **error, guint op_index, const UmgOp *op, const gchar *format, ...)
{
  va_list args;
  g_autofree gchar *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "graph op %u (%s): %s", op_index,
               umg_op_name (op->type), message);
  return FALSE;
}

static const StoredTensor *
lookup_storage (Recorder *recorder, UmgRef ref, StoredTensor *arena_view)
{
  UmgPlan *plan = recorder->plan;

  switch (ref.storage)
    {
    case UMG_STORAGE_ARENA:
      *arena_view = (StoredTensor){
        .name = "arena",
        .buffer = plan->arena.buffer,
        .buffer_size = MAX (plan->arena.size, 16),
        .byte_offset = 0,
        .dtype = UMG_DTYPE_F32,
        .n_elements = plan->arena_elements,
      };
      return arena_view;
    case UMG_STORAGE_WEIGHT:
      return ref.index < recorder->backend->n_weights ? &recorder->backend->weights[ref.index]
                                                      : NULL;
    case UMG_STORAGE_CONST:
      return ref.index < plan->n_consts ? &plan->const_tensors[ref.index] : NULL;
    case UMG_STORAGE_INPUT:
      if (ref.index >= plan->inputs->len)
        return NULL;
      /* a direct input is read where run() put it: its slice of the staging buffer */
      *arena_view = (StoredTensor){
        .name = "direct input",
        .buffer = plan->staging.buffer,
        .buffer_size = MAX (plan->staging.size, 16),
        .byte_offset = plan->input_staging_offsets[ref.index],
        .dtype = UMG_DTYPE_F32,
        .n_elements = g_array_index (plan->inputs, UmgSlot, ref.index).n_elements,
      };
      return arena_view;
    }
  return NULL;
}

/* Binds the smallest aligned window of the storage that covers the request, so buffers larger
 * than maxStorageBufferRange still work as long as one op's footprint fits. */
static gboolean
resolve_binding (Recorder *recorder, guint op_index, const UmgOp *op, const BindingRequest *request,
                 Binding *binding, GError **error)
{
  const VkPhysicalDeviceLimits *limits = &recorder->backend->ctx->properties.limits;
  StoredTensor arena_view;
  const StoredTensor *storage = lookup_storage (recorder, request->ref, &arena_view);
  gsize element_size;
  VkDeviceSize start, end, window;

  if (storage == NULL)
    return fail_op (error, op_index, op, "%s refers to %s %u, which does not exist", request->role,
                    request->ref.storage == UMG_STORAGE_WEIGHT ? "weight" : "constant",
                    request->ref.index);
  if (request->ref.offset > storage->n_elements
      || request->extent > storage->n_elements - request->ref.offset)
    return fail_op (error, op_index, op,
                    "%s needs elements [%" G_GSIZE_FORMAT ", %" G_GSIZE_FORMAT ") of %s, "
                    "which has %" G_GSIZE_FORMAT,
                    request->role, request->ref.offset, request->ref.offset + request->extent,
                    storage->name, storage->n_elements);
  if (storage->dtype == UMG_DTYPE_F16 && !request->may_be_f16)
    return fail_op (error, op_index, op,
                    "%s is the F16 matrix %s; only matmul B and gather "
                    "tables may be",
                    request->role, storage->name);

  element_size = umg_dtype_size (storage->dtype);
  start = storage->byte_offset + request->ref.offset * element_size;
  end = start + MAX (request->extent, 1) * element_size;
  window
      = start / limits->minStorageBufferOffsetAlignment * limits->minStorageBufferOffsetAlignment;
  end = MIN (align_up (end, 4), storage->buffer_size);
  if (end - window > limits->maxStorageBufferRange)
    return fail_op (error, op_index, op,
                    "%s spans %" G_GUINT64_FORMAT " bytes of %s, more than "
                    "this device's maxStorageBufferRange (%u)",
                    request->role, (guint64) (end - window), storage->name,
                    limits->maxStorageBufferRange);
  binding->info = (VkDescriptorBufferInfo){ storage->buffer, window, end - window };
  binding->element_offset = (guint32) ((start - window) / element_size);
  binding->dtype = storage->dtype;
  return TRUE;
}

static gboolean
overlaps (GArray *intervals, Interval range)
{
  for (guint i = 0; i < intervals->len; i++)
    {
      const Interval *other = &g_array_index (intervals, Interval, i);
      if (range.start < other->end && other->start < range.end)
        return TRUE;
    }
  return FALSE;
}

/* A compute-to-compute barrier only where this op touches arena data that an earlier
 * dispatch since the last barrier wrote (read after write, write after write) or read (write
 * after read); independent ops, such as the Q, K and V projections, run back to back. */
static void
barrier_if_dependent (Recorder *recorder, const BindingRequest *requests, guint n_requests)
{
  gboolean dependent = FALSE;

  for (guint i = 0; i < n_requests && !dependent; i++)
    {
      Interval range = { requests[i].ref.offset, requests[i].ref.offset + requests[i].extent };
      if (requests[i].ref.storage != UMG_STORAGE_ARENA)
        continue;
      if (requests[i].reads && overlaps (recorder->pending_writes, range))
        dependent = TRUE;
      if (requests[i].writes
          && (overlaps (recorder->pending_writes, range)
              || overlaps (recorder->pending_reads, range)))
        dependent = TRUE;
    }
  if (dependent)
    {
      VkMemoryBarrier barrier = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT,
      };
      vkCmdPipelineBarrier (recorder->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                            VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &barrier, 0, NULL, 0, NULL);
      g_array_set_size (recorder->pending_reads, 0);
      g_array_set_size (recorder->pending_writes, 0);
      recorder->plan->n_barriers++;
    }
  for (guint i = 0; i < n_requests; i++)
    {
      Interval range = { requests[i].ref.offset, requests[i].ref.offset + requests[i].extent };
      if (requests[i].ref.storage != UMG_STORAGE_ARENA)
        continue;
      if (requests[i].reads)
        g_array_append_val (recorder->pending_reads, range);
      if (requests[i].writes)
        g_array_append_val (recorder->pending_writes, range);
    }
}

/* Spreads n_groups workgroups over x and y so neither exceeds the device's dispatch limit;
 * shaders rebuild the linear index as y * gl_NumWorkGroups.x + x and skip the excess. */
static gboolean
split_groups (Recorder *recorder, guint op_index, const UmgOp *op, guint64 n_groups,
              guint32 groups[3], GError **error)
{
  const guint32 *max_count = recorder->backend->ctx->properties.limits.maxComputeWorkGroupCount;
  guint64 x = MIN (n_groups, max_count[0]);
  guint64 y = (n_groups + x - 1) / x;

  if (y > max_count[1])
    return fail_op (error, op_index, op,
                    "%" G_GUINT64_FORMAT " workgroups exceed the device's "
                    "dispatch limit",
                    n_groups);
  groups[0] = (guint32) x;
  groups[1] = (guint32) y;
  groups[2] = 1;
  return TRUE;
}

static guint32
reduction_workgroup (Recorder *recorder, gint cols)
{
  guint32 limit = MIN (recorder->backend->ctx->properties.limits.maxComputeWorkGroupInvocations,
                       recorder->backend->ctx->properties.limits.maxComputeWorkGroupSize[0]);
  guint32 size = 32;
  /* enough invocations to cover a row once, as a power of two for the tree reduction */
  while (size < 256 && size < (guint32) cols)
    size *= 2;
  while (size > limit)
    size /= 2;
  return size;
}

typedef struct
{
  guint32 tile_m, tile_n, tile_k, thread_m, thread_n;
  gboolean tiled;
} MatmulTiles;

static MatmulTiles
choose_matmul_tiles (VulkanBackend *self, const UmgMatmulParams *mm)
{
  const VkPhysicalDeviceLimits *limits = &self->ctx->properties.limits;
  MatmulTiles tiles = { 64, 64, 16, 4, 4, TRUE };
  guint32 max_threads
      = MIN (limits->maxComputeWorkGroupInvocations, limits->maxComputeWorkGroupSize[0]);

  /* 8 × 8 outputs per invocation, 16 invocations per workgroup: measured on lavapipe at
   * 2-4 times the tiled variant's speed */
  if (self->direct_matmul)
    return (MatmulTiles){ 8, 128, 1, 8, 8, FALSE };
  /* thin products (a handful of tokens) would leave most of a 64-row tile idle */
  if (mm->m <= 32)
    tiles = (MatmulTiles){ 32, 64, 16, 2, 4, TRUE };
  while ((tiles.tile_m / tiles.thread_m) * (tiles.tile_n / tiles.thread_n) > max_threads)
    tiles.thread_m *= 2;
  return tiles;
}

static gboolean
record_dispatch (Recorder *recorder, guint op_index, const UmgOp *op, ShaderId shader_id,
                 const guint32 *spec, guint n_spec, const BindingRequest *requests,
                 const Binding *bindings, const void *params, const guint32 groups[3],
                 GError **error)
{
  UmgVkContext *ctx = recorder->backend->ctx;
  const UmgVkShader *shader = &shaders[shader_id];
  const UmgVkPipeline *pipeline = umg_vk_get_pipeline (ctx, shader, spec, n_spec, error);
  VkDescriptorSetAllocateInfo allocate_info = {
    .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
    .descriptorPool = recorder->plan->descriptor_pool,
    .descriptorSetCount = 1,
  };
  VkWriteDescriptorSet writes[MAX_BINDINGS];
  VkDescriptorSet set;

  if (pipeline == NULL)
    return FALSE;
  allocate_info.pSetLayouts = &pipeline->set_layout;
  if (!umg_vk_check (vkAllocateDescriptorSets (ctx->device, &allocate_info, &set),
                     "vkAllocateDescriptorSets", error))
    return FALSE;
  for (guint i = 0; i < shader->n_bindings; i++)
    writes[i] = (VkWriteDescriptorSet){
      .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
      .dstSet = set,
      .dstBinding = i,
      .descriptorCount = 1,
      .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
      .pBufferInfo = &bindings[i].info,
    };
  vkUpdateDescriptorSets (ctx->device, shader->n_bindings, writes, 0, NULL);

  barrier_if_dependent (recorder, requests, shader->n_bindings);
  if (recorder->bound_pipeline != pipeline->pipeline)
    {
      vkCmdBindPipeline (recorder->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline->pipeline);
      recorder->bound_pipeline = pipeline->pipeline;
    }
  vkCmdBindDescriptorSets (recorder->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline->layout, 0, 1,
                           &set, 0, NULL);
  vkCmdPushConstants (recorder->cmd, pipeline->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0,
                      shader->push_constant_size, params);
  vkCmdDispatch (recorder->cmd, groups[0], groups[1], groups[2]);
  recorder->plan->n_dispatches++;
  return TRUE;
}

static gboolean
resolve_all (Recorder *recorder, guint op_index, const UmgOp *op, const BindingRequest *requests,
             guint n_requests, Binding *bindings, GError **error)
{
  for (guint i = 0; i < n_requests; i++)
    if (!resolve_binding (recorder, op_index, op, &requests[i], &bindings[i], error))
      return FALSE;
  return TRUE;
}

static gboolean
record_matmul (Recorder *recorder, guint op_index, const UmgOp *op, GError **error)
{
  const UmgMatmulParams *mm = &op->p.mm;
  const guint32 *max_count = recorder->backend->ctx->properties.limits.maxComputeWorkGroupCount;
  gboolean has_bias = !umg_ref_is_none (op->src[2]);
  BindingRequest requests[4] = {
    input_binding (op->src[0], umg_strided_extent (mm->batch, mm->stride_a, mm->m, mm->lda, mm->k),
                   "A"),
    matrix_binding (op->src[1],
                    mm->trans_b
                        ? umg_strided_extent (mm->batch, mm->stride_b, mm->n, mm->ldb, mm->k)
                        : umg_strided_extent (mm->batch, mm->stride_b, mm->k, mm->ldb, mm->n),
                    "B"),
    has_bias ? input_binding (op->src[2], (gsize) MAX (mm->n, 0), "bias")
             : unused_binding (op->src[0]),
    output_binding (op->dst, umg_strided_extent (mm->batch, mm->stride_c, mm->m, mm->ldc, mm->n),
                    "C", mm->accumulate),
  };
  Binding bindings[4];
  MatmulTiles tiles = choose_matmul_tiles (recorder->backend, mm);
  guint32 spec[11];
  MatmulPush params;
  guint32 groups[3];

  if (mm->m < 0 || mm->n < 0 || mm->k < 0 || mm->batch < 0 || mm->lda < 0 || mm->ldb < 0
      || mm->ldc < 0 || mm->stride_a < 0 || mm->stride_b < 0 || mm->stride_c < 0)
    return fail_op (error, op_index, op, "negative size or stride");
  if (mm->act != UMG_ACT_NONE && mm->act != UMG_ACT_QUICK_GELU && mm->act != UMG_ACT_GELU)
    return fail_op (error, op_index, op, "unknown activation %d", (gint) mm->act);
  if (mm->m == 0 || mm->n == 0 || mm->batch == 0)
    return TRUE;
  if (mm->k == 0)
    {
      requests[0].extent = 0;
      requests[1].extent = 0;
    }
  if (!resolve_all (recorder, op_index, op, requests, 4, bindings, error))
    return FALSE;

  spec[0] = tiles.tile_m;
  spec[1] = tiles.tile_n;
  spec[2] = tiles.tile_k;
  spec[3] = tiles.thread_m;
  spec[4] = tiles.thread_n;
  spec[5] = mm->trans_b != FALSE;
  spec[6] = has_bias;
  spec[7] = (guint32) mm->act;
  spec[8] = mm->accumulate != FALSE;
  spec[9] = tiles.tiled ? (tiles.tile_m / tiles.thread_m) * (tiles.tile_n / tiles.thread_n)
                        : tiles.tile_n / tiles.thread_n;
  spec[10] = tiles.tiled;

  params = (MatmulPush){
    .m = mm->m,
    .n = mm->n,
    .k = mm->k,
    .lda = mm->lda,
    .ldb = mm->ldb,
    .ldc = mm->ldc,
    .stride_a = (guint32) mm->stride_a,
    .stride_b = (guint32) mm->stride_b,
    .stride_c = (guint32) mm->stride_c,
    .offset_a = bindings[0].element_offset,
    .offset_b = bindings[1].element_offset,
    .offset_bias = bindings[2].element_offset,
    .offset_c = bindings[3].element_offset,
    .alpha = mm->alpha,
  };
  groups[0] = (mm->n + tiles.tile_n - 1) / tiles.tile_n;
  groups[1] = (mm->m + tiles.tile_m - 1) / tiles.tile_m;
  if (groups[0] > max_count[0] || groups[1] > max_count[1])
    return fail_op (error, op_index, op, "%d × %d is too large for one dispatch", mm->m, mm->n);
  /* batches beyond the z limit go in further dispatches with a batch base */
  for (gint64 base = 0; base < mm->batch; base += max_count[2])
    {
      params.batch_base = (guint32) base;
      groups[2] = (guint32) MIN ((gint64) max_count[2], mm->batch - base);
      if (!record_dispatch (recorder, op_index, op,
                            bindings[1].dtype == UMG_DTYPE_F16 ? SHADER_MATMUL_F16 : SHADER_MATMUL,
                            spec, G_N_ELEMENTS (spec), requests, bindings, &params, groups, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
record_layernorm (Recorder *recorder, guint op_index, const UmgOp *op, GError **error)
{
  const UmgLayernormParams *ln = &op->p.ln;
  BindingRequest requests[4] = {
    input_binding (op->src[0], umg_strided_extent (1, 0, ln->rows, ln->src_stride, ln->cols), "x"),
    input_binding (op->src[1], (gsize) MAX (ln->cols, 0), "gamma"),
    input_binding (op->src[2], (gsize) MAX (ln->cols, 0), "beta"),
    output_binding (op->dst, umg_strided_extent (1, 0, ln->rows, ln->dst_stride, ln->cols), "dst",
                    FALSE),
  };
  Binding bindings[4];
  guint32 spec[1] = { reduction_workgroup (recorder, ln->cols) };
  LayernormPush params;
  guint32 groups[3];

  if (ln->rows < 0 || ln->cols < 0 || ln->src_stride < 0 || ln->dst_stride < 0)
    return fail_op (error, op_index, op, "negative size or stride");
  if (ln->rows == 0 || ln->cols == 0)
    return TRUE;
  if (!resolve_all (recorder, op_index, op, requests, 4, bindings, error)
      || !split_groups (recorder, op_index, op, ln->rows, groups, error))
    return FALSE;
  params = (LayernormPush){
    .rows = ln->rows,
    .cols = ln->cols,
    .src_stride = ln->src_stride,
    .dst_stride = ln->dst_stride,
    .offset_x = bindings[0].element_offset,
    .offset_gamma = bindings[1].element_offset,
    .offset_beta = bindings[2].element_offset,
    .offset_dst = bindings[3].element_offset,
    .eps = ln->eps,
  };
  return record_dispatch (recorder, op_index, op, SHADER_LAYERNORM, spec, 1, requests, bindings,
                          &params, groups, error);
}

static gboolean
record_softmax (Recorder *recorder, guint op_index, const UmgOp *op, GError **error)
{
  const UmgSoftmaxParams *sm = &op->p.softmax;
  gboolean has_bias = !umg_ref_is_none (op->src[0]);
  gsize total_rows = (gsize) MAX (sm->batch, 0) * (gsize) MAX (sm->rows, 0);
  BindingRequest requests[2] = {
    output_binding (op->dst, total_rows * (gsize) MAX (sm->cols, 0), "x", TRUE),
    has_bias ? input_binding (op->src[0], (gsize) MAX (sm->rows, 0) * MAX (sm->cols, 0), "bias")
             : unused_binding (op->dst),
  };
  Binding bindings[2];
  guint32 spec[3] = { reduction_workgroup (recorder, sm->cols), has_bias, sm->causal != FALSE };
  SoftmaxPush params;
  guint32 groups[3];

  if (sm->batch < 0 || sm->rows < 0 || sm->cols < 0)
    return fail_op (error, op_index, op, "negative size");
  if (total_rows == 0 || sm->cols == 0)
    return TRUE;
  if (total_rows > G_MAXUINT32)
    return fail_op (error, op_index, op, "%" G_GSIZE_FORMAT " rows are too many", total_rows);
  if (!resolve_all (recorder, op_index, op, requests, 2, bindings, error)
      || !split_groups (recorder, op_index, op, total_rows, groups, error))
    return FALSE;
  params = (SoftmaxPush){
    .total_rows = (guint32) total_rows,
    .rows = sm->rows,
    .cols = sm->cols,
    .offset_x = bindings[0].element_offset,
    .offset_bias = bindings[1].element_offset,
  };
  return record_dispatch (recorder, op_index, op, SHADER_SOFTMAX, spec, 3, requests, bindings,
                          &params, groups, error);
}

static gboolean
record_elementwise (Recorder *recorder, guint op_index, const UmgOp *op, ShaderId shader_id,
                    const BindingRequest *requests, guint n_requests, gsize n_items, void *params,
                    guint32 **offset_fields, GError **error)
{
  Binding bindings[MAX_BINDINGS];
  guint32 spec[1] = { ELEMENTWISE_WORKGROUP };
  guint32 groups[3];

  if (n_items == 0)
    return TRUE;
  if (n_items > G_MAXUINT32)
    return fail_op (error, op_index, op, "%" G_GSIZE_FORMAT " elements are too many for one op",
                    n_items);
  if (!resolve_all (recorder, op_index, op, requests, n_requests, bindings, error)
      || !split_groups (recorder, op_index, op,
                        (n_items + ELEMENTWISE_WORKGROUP - 1) / ELEMENTWISE_WORKGROUP, groups,
                        error))
    return FALSE;
  for (guint i = 0; i < n_requests; i++)
    *offset_fields[i] = bindings[i].element_offset;
  return record_dispatch (recorder, op_index, op, shader_id, spec, 1, requests, bindings, params,
                          groups, error);
}

/* The frame's planes are bound as one window of the storage they share (the staging buffer
 * for direct inputs, else the arena), each plane at its byte offset from the window's start. */
static gboolean
record_preprocess (Recorder *recorder, guint op_index, const UmgOp *op, GError **error)
{
  const UmgPreprocessParams *pre = &op->p.preprocess;
  const VkPhysicalDeviceLimits *limits = &recorder->backend->ctx->properties.limits;
  gsize elements[3];
  guint n_planes = umg_preprocess_plane_elements (pre, elements);
  gsize n_items = (gsize) pre->out_w * pre->out_h;
  VkDeviceSize start[3], first = G_MAXUINT64, end = 0, window;
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceSize buffer_size = 0;
  gsize arena_first = G_MAXSIZE, arena_end = 0;
  PreprocessPush params = {
    .format = pre->format,
    .width = pre->width,
    .height = pre->height,
    .out_w = pre->out_w,
    .out_h = pre->out_h,
  };
  BindingRequest requests[3];
  Binding bindings[3];
  guint32 spec[1] = { ELEMENTWISE_WORKGROUP };
  guint32 groups[3];

  for (guint i = 0; i < n_planes; i++)
    {
      StoredTensor view;
      const StoredTensor *storage = lookup_storage (recorder, op->src[i], &view);
      if (storage == NULL || (buffer != VK_NULL_HANDLE && storage->buffer != buffer))
        return fail_op (error, op_index, op, "the planes of one frame must lie in one buffer");
      buffer = storage->buffer;
      buffer_size = storage->buffer_size;
      start[i] = storage->byte_offset + op->src[i].offset * 4;
      first = MIN (first, start[i]);
      end = MAX (end, start[i] + elements[i] * 4);
      if (op->src[i].storage == UMG_STORAGE_ARENA)
        {
          arena_first = MIN (arena_first, op->src[i].offset);
          arena_end = MAX (arena_end, op->src[i].offset + elements[i]);
        }
    }
  window
      = first / limits->minStorageBufferOffsetAlignment * limits->minStorageBufferOffsetAlignment;
  end = MIN (end, buffer_size);
  if (end - window > limits->maxStorageBufferRange || end - window > G_MAXUINT32)
    return fail_op (error, op_index, op,
                    "the frame spans %" G_GUINT64_FORMAT " bytes, more than this device's "
                    "maxStorageBufferRange (%u)",
                    (guint64) (end - window), limits->maxStorageBufferRange);
  bindings[0] = (Binding){ { buffer, window, end - window }, 0, UMG_DTYPE_F32 };
  for (guint i = 0; i < 3; i++)
    {
      params.strides[i] = i < n_planes ? pre->strides[i] : 0;
      params.planes[i] = i < n_planes ? (guint32) (start[i] - window) : 0;
      /* the same float operations as umgclip_frame_to_tensor */
      params.gain[i] = 1.0f / (255.0f * pre->std[i]);
      params.bias[i] = -pre->mean[i] / pre->std[i];
    }
  umg_yuv_coefficients (pre->kr, pre->kb, pre->full_range, &params.yuv);

  /* barriers only look at arena ranges: planes in staging are never written by shaders */
  requests[0] = arena_end > 0
                    ? input_binding (umg_ref_arena (arena_first), arena_end - arena_first, "frame")
                    : unused_binding (op->src[0]);
  requests[0].reads = TRUE;
  requests[1] = output_binding (op->dst, 3 * n_items, "dst", FALSE);
  requests[2] = input_binding (op->src[3], 4, "crop");
  if (!resolve_binding (recorder, op_index, op, &requests[1], &bindings[1], error)
      || !resolve_binding (recorder, op_index, op, &requests[2], &bindings[2], error)
      || !split_groups (recorder, op_index, op,
                        (n_items + ELEMENTWISE_WORKGROUP - 1) / ELEMENTWISE_WORKGROUP, groups,
                        error))
    return FALSE;
  params.offset_frame = 0;
  params.offset_dst = bindings[1].element_offset;
  params.offset_crop = bindings[2].element_offset;
  return record_dispatch (recorder, op_index, op, SHADER_PREPROCESS, spec, 1, requests, bindings,
                          &params, groups, error);
}

static gboolean
record_op (Recorder *recorder, guint op_index, const UmgOp *op, GError **error)
{
  switch (op->type)
    {
    case UMG_OP_MATMUL:
      return record_matmul (recorder, op_index, op, error);
    case UMG_OP_LAYERNORM:
      return record_layernorm (recorder, op_index, op, error);
    case UMG_OP_SOFTMAX:
      return record_softmax (recorder, op_index, op, error);
    case UMG_OP_GATHER:
      {
        const UmgGatherParams *g = &op->p.gather;
        StoredTensor arena_view;
        const StoredTensor *table = lookup_storage (recorder, op->src[0], &arena_view);
        /* ids are only known on the device: the whole table from the ref on is bound */
        gsize table_extent = table != NULL && op->src[0].offset <= table->n_elements
                                 ? table->n_elements - op->src[0].offset
                                 : 0;
        BindingRequest requests[3] = {
          matrix_binding (op->src[0], table_extent, "table"),
          input_binding (op->src[1], (gsize) MAX (g->rows, 0), "ids"),
          output_binding (op->dst, (gsize) MAX (g->rows, 0) * (gsize) MAX (g->cols, 0), "dst",
                          FALSE),
        };
        GatherPush params = {
          .rows = g->rows,
          .cols = g->cols,
          .src_stride = g->src_stride,
        };
        guint32 *offsets[3] = { &params.offset_table, &params.offset_ids, &params.offset_dst };
        if (g->rows < 0 || g->cols < 0 || g->src_stride < 0)
          return fail_op (error, op_index, op, "negative size or stride");
        if (g->cols > 0 && table_extent >= (gsize) g->cols)
          params.table_rows
              = g->src_stride > 0
                    ? (guint32) MIN ((table_extent - g->cols) / g->src_stride + 1, G_MAXUINT32)
                    : 1;
        return record_elementwise (
            recorder, op_index, op,
            table != NULL && table->dtype == UMG_DTYPE_F16 ? SHADER_GATHER_F16 : SHADER_GATHER,
            requests, 3, (gsize) MAX (g->rows, 0) * MAX (g->cols, 0), &params, offsets, error);
      }
    case UMG_OP_IM2COL:
      {
        const UmgIm2colParams *ic = &op->p.im2col;
        gsize row_size = (gsize) MAX (ic->channels, 0) * MAX (ic->patch, 0) * MAX (ic->patch, 0);
        gsize n_items = (gsize) MAX (ic->grid_h, 0) * MAX (ic->grid_w, 0) * row_size;
        BindingRequest requests[2] = {
          input_binding (op->src[0],
                         (gsize) MAX (ic->channels, 0) * MAX (ic->height, 0) * MAX (ic->width, 0),
                         "image"),
          output_binding (op->dst, n_items, "dst", FALSE),
        };
        Im2colPush params = {
          .channels = ic->channels,
          .height = ic->height,
          .width = ic->width,
          .patch_size = ic->patch,
          .grid_h = ic->grid_h,
          .grid_w = ic->grid_w,
        };
        guint32 *offsets[2] = { &params.offset_image, &params.offset_dst };
        if ((gint64) ic->grid_h * ic->patch > ic->height
            || (gint64) ic->grid_w * ic->patch > ic->width)
          return fail_op (error, op_index, op,
                          "a %d × %d grid of %d-pixel patches does not fit "
                          "a %d × %d image",
                          ic->grid_h, ic->grid_w, ic->patch, ic->height, ic->width);
        return record_elementwise (recorder, op_index, op, SHADER_IM2COL, requests, 2, n_items,
                                   &params, offsets, error);
      }
    case UMG_OP_ADD:
      {
        gint64 n = op->p.add.n, n_b = op->p.add.n_b;
        BindingRequest requests[3] = {
          input_binding (op->src[0], (gsize) MAX (n, 0), "a"),
          input_binding (op->src[1], (gsize) MAX (n_b, 0), "b"),
          output_binding (op->dst, (gsize) MAX (n, 0), "dst", FALSE),
        };
        AddPush params = { .n = (guint32) n, .n_b = (guint32) n_b };
        guint32 *offsets[3] = { &params.offset_a, &params.offset_b, &params.offset_dst };
        if (n < 0 || (n > 0 && n_b <= 0) || n_b > G_MAXUINT32)
          return fail_op (error, op_index, op,
                          "bad sizes n %" G_GINT64_FORMAT ", n_b %" G_GINT64_FORMAT, n, n_b);
        return record_elementwise (recorder, op_index, op, SHADER_ADD, requests, 3, (gsize) n,
                                   &params, offsets, error);
      }
    case UMG_OP_COPY:
      {
        const UmgCopyParams *cp = &op->p.copy;
        BindingRequest requests[2] = {
          input_binding (op->src[0], umg_strided_extent (1, 0, cp->rows, cp->src_stride, cp->cols),
                         "src"),
          output_binding (op->dst, umg_strided_extent (1, 0, cp->rows, cp->dst_stride, cp->cols),
                          "dst", FALSE),
        };
        CopyPush params = {
          .rows = cp->rows,
          .cols = cp->cols,
          .src_stride = cp->src_stride,
          .dst_stride = cp->dst_stride,
        };
        guint32 *offsets[2] = { &params.offset_src, &params.offset_dst };
        if (cp->rows < 0 || cp->cols < 0 || cp->src_stride < 0 || cp->dst_stride < 0)
          return fail_op (error, op_index, op, "negative size or stride");
        return record_elementwise (recorder, op_index, op, SHADER_COPY, requests, 2,
                                   (gsize) cp->rows * cp->cols, &params, offsets, error);
      }
    case UMG_OP_ROI_ALIGN:
      {
        const UmgRoiAlignParams *roi = &op->p.roi;
        BindingRequest requests[3] = {
          input_binding (op->src[0],
                         (gsize) MAX (roi->grid_h, 0) * MAX (roi->grid_w, 0) * MAX (roi->cols, 0),
                         "map"),
          input_binding (op->src[1], (gsize) MAX (roi->n_boxes, 0) * 4, "boxes"),
          output_binding (op->dst, (gsize) MAX (roi->n_boxes, 0) * MAX (roi->cols, 0), "dst",
                          FALSE),
        };
        RoiAlignPush params = {
          .grid_h = roi->grid_h,
          .grid_w = roi->grid_w,
          .cols = roi->cols,
          .n_boxes = roi->n_boxes,
          .output_size = roi->output_size,
          .sampling = roi->sampling,
        };
        guint32 *offsets[3] = { &params.offset_map, &params.offset_boxes, &params.offset_dst };
        if (roi->grid_h <= 0 || roi->grid_w <= 0 || roi->cols < 0 || roi->n_boxes < 0
            || roi->output_size <= 0 || roi->sampling <= 0)
          return fail_op (error, op_index, op, "bad sizes (grid %d × %d, output %d, sampling %d)",
                          roi->grid_h, roi->grid_w, roi->output_size, roi->sampling);
        return record_elementwise (recorder, op_index, op, SHADER_ROI_ALIGN, requests, 3,
                                   (gsize) roi->n_boxes * roi->cols, &params, offsets, error);
      }
    case UMG_OP_PREPROCESS:
      return record_preprocess (recorder, op_index, op, error);
    case UMG_OP_L2NORM:
      {
        const UmgL2normParams *l2 = &op->p.l2;
        gsize n = (gsize) MAX (l2->rows, 0) * MAX (l2->cols, 0);
        BindingRequest requests[2] = {
          input_binding (op->src[0], n, "x"),
          output_binding (op->dst, n, "dst", FALSE),
        };
        Binding bindings[2];
        guint32 spec[1] = { reduction_workgroup (recorder, l2->cols) };
        L2normPush params = { .rows = l2->rows, .cols = l2->cols };
        guint32 groups[3];
        if (n == 0)
          return TRUE;
        if (!resolve_all (recorder, op_index, op, requests, 2, bindings, error)
            || !split_groups (recorder, op_index, op, l2->rows, groups, error))
          return FALSE;
        params.offset_x = bindings[0].element_offset;
        params.offset_dst = bindings[1].element_offset;
        return record_dispatch (recorder, op_index, op, SHADER_L2NORM, spec, 1, requests, bindings,
                                &params, groups, error);
      }
    case UMG_N_OPS:
      break;
    }
  return fail_op (error, op_index, op, "unknown op type %d", (gint) op->type);
}

/* --- plans ----------------------------------------------------------------------------- */

static void
vulkan_free_plan (UmgBackend *backend, UmgPlan *plan)
{
  VulkanBackend *self = (VulkanBackend *) backend;
  UmgVkContext *ctx = self->ctx;

  if (plan == NULL)
    return;
  /* runs wait for their fence, so nothing of the plan is still in flight */
  if (plan->fence != VK_NULL_HANDLE)
    vkDestroyFence (ctx->device, plan->fence, NULL);
  g_rec_mutex_lock (&ctx->lock);
  if (plan->cmd != VK_NULL_HANDLE)
    vkFreeCommandBuffers (ctx->device, ctx->command_pool, 1, &plan->cmd);
  if (plan->prologue != VK_NULL_HANDLE)
    vkFreeCommandBuffers (ctx->device, ctx->command_pool, 1, &plan->prologue);
  g_rec_mutex_unlock (&ctx->lock);
  if (plan->descriptor_pool != VK_NULL_HANDLE)
    vkDestroyDescriptorPool (ctx->device, plan->descriptor_pool, NULL);
  umg_vk_buffer_clear (ctx, &plan->arena);
  umg_vk_buffer_clear (ctx, &plan->consts);
  umg_vk_buffer_clear (ctx, &plan->staging);
  g_free (plan->const_tensors);
  g_clear_pointer (&plan->inputs, g_array_unref);
  g_clear_pointer (&plan->outputs, g_array_unref);
  g_free (plan->input_staging_offsets);
  g_free (plan->output_staging_offsets);
  g_free (plan);
}

/* One host-visible buffer for every input and output slot. Direct inputs are bound from it
 * as they are, so each starts on the device's storage-buffer offset alignment. */
static gboolean
plan_staging (UmgVkContext *ctx, UmgPlan *plan, const UmgGraph *graph, GError **error)
{
  const VkDeviceSize direct_alignment
      = MAX (16, ctx->properties.limits.minStorageBufferOffsetAlignment);
  VkDeviceSize size = 0;

  plan->inputs = g_array_copy (graph->inputs);
  plan->outputs = g_array_copy (graph->outputs);
  plan->input_staging_offsets = g_new0 (VkDeviceSize, MAX (graph->inputs->len, 1));
  plan->output_staging_offsets = g_new0 (VkDeviceSize, MAX (graph->outputs->len, 1));
  for (guint pass = 0; pass < 2; pass++)
    {
      GArray *slots = pass == 0 ? graph->inputs : graph->outputs;
      VkDeviceSize *offsets
          = pass == 0 ? plan->input_staging_offsets : plan->output_staging_offsets;
      for (guint i = 0; i < slots->len; i++)
        {
          const UmgSlot *slot = &g_array_index (slots, UmgSlot, i);
          if (slot->direct)
            size = align_up (size, direct_alignment);
          offsets[i] = size;
          size = align_up (size + slot->n_elements * 4, 16);
        }
    }
  return umg_vk_buffer_init (ctx, &plan->staging, size, TRUE, "input/output staging buffer", error);
}

/* Arena slots move between staging and the arena; direct inputs stay in staging. */
static void
record_slot_copies (UmgPlan *plan, VkCommandBuffer cmd, gboolean to_arena)
{
  GArray *slots = to_arena ? plan->inputs : plan->outputs;
  VkDeviceSize *offsets = to_arena ? plan->input_staging_offsets : plan->output_staging_offsets;

  for (guint i = 0; i < slots->len; i++)
    {
      const UmgSlot *slot = &g_array_index (slots, UmgSlot, i);
      VkBufferCopy region = {
        .srcOffset = to_arena ? offsets[i] : slot->offset * 4,
        .dstOffset = to_arena ? slot->offset * 4 : offsets[i],
        .size = slot->n_elements * 4,
      };
      if (region.size == 0 || slot->direct)
        continue;
      if (to_arena)
        vkCmdCopyBuffer (cmd, plan->staging.buffer, plan->arena.buffer, 1, &region);
      else
        vkCmdCopyBuffer (cmd, plan->arena.buffer, plan->staging.buffer, 1, &region);
    }
}

static void
memory_barrier (VkCommandBuffer cmd, VkPipelineStageFlags src_stage, VkAccessFlags src_access,
                VkPipelineStageFlags dst_stage, VkAccessFlags dst_access)
{
  VkMemoryBarrier barrier = {
    .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
    .srcAccessMask = src_access,
    .dstAccessMask = dst_access,
  };
  vkCmdPipelineBarrier (cmd, src_stage, dst_stage, 0, 1, &barrier, 0, NULL, 0, NULL);
}

static gboolean
record_plan (VulkanBackend *self, UmgPlan *plan, const UmgGraph *graph, GError **error)
{
  UmgVkContext *ctx = self->ctx;
  VkCommandBufferAllocateInfo allocate_info = {
    .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
    .commandPool = ctx->command_pool,
    .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
    .commandBufferCount = 1,
  };
  VkCommandBufferBeginInfo begin = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO };
  Recorder recorder = {
    .backend = self,
    .plan = plan,
    .pending_reads = g_array_new (FALSE, FALSE, sizeof (Interval)),
    .pending_writes = g_array_new (FALSE, FALSE, sizeof (Interval)),
  };
  gboolean ok;

  g_rec_mutex_lock (&ctx->lock);
  ok = umg_vk_check (vkAllocateCommandBuffers (ctx->device, &allocate_info, &plan->cmd),
                     "vkAllocateCommandBuffers", error)
       && umg_vk_check (vkBeginCommandBuffer (plan->cmd, &begin), "vkBeginCommandBuffer", error);
  recorder.cmd = plan->cmd;
  if (ok)
    {
      /* the previous run's shaders and copies are done with the arena before inputs land */
      memory_barrier (plan->cmd,
                      VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                      VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                      VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT);
      record_slot_copies (plan, plan->cmd, TRUE);
      memory_barrier (plan->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                      VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                      VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
    }
  for (guint i = 0; ok && i < graph->ops->len; i++)
    ok = record_op (&recorder, i, &g_array_index (graph->ops, UmgOp, i), error);
  if (ok)
    {
      memory_barrier (plan->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
                      VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_READ_BIT);
      record_slot_copies (plan, plan->cmd, FALSE);
      memory_barrier (plan->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                      VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
      ok = umg_vk_check (vkEndCommandBuffer (plan->cmd), "vkEndCommandBuffer", error);
    }
  g_rec_mutex_unlock (&ctx->lock);
  g_array_unref (recorder.pending_reads);
  g_array_unref (recorder.pending_writes);
  return ok;
}

static UmgPlan *
vulkan_plan (UmgBackend *backend, const UmgGraph *graph, GError **error)
{
  VulkanBackend *self = (VulkanBackend *) backend;
  UmgVkContext *ctx = self->ctx;
  UmgPlan *plan = g_new0 (UmgPlan, 1);
  g_autoptr (GArray) const_chunks = g_array_new (FALSE, TRUE, sizeof (UmgVkBuffer));
  guint n_ops = MAX (graph->ops->len, 1);
  VkDescriptorPoolSize pool_size = {
    .type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
    .descriptorCount = n_ops * MAX_BINDINGS,
  };
  VkDescriptorPoolCreateInfo pool_info = {
    .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
    .maxSets = n_ops,
    .poolSizeCount = 1,
    .pPoolSizes = &pool_size,
  };
  VkFenceCreateInfo fence_info = { .sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO };

  if (!umg_graph_validate (graph, self->weight_tensors, self->n_weights, error))
    {
      g_free (plan);
      return NULL;
    }
  /* matmul may split a huge batch over several dispatches, each with its own set */
  for (guint i = 0; i < graph->ops->len; i++)
    {
      const UmgOp *op = &g_array_index (graph->ops, UmgOp, i);
      if (op->type == UMG_OP_MATMUL && op->p.mm.batch > 0)
        {
          guint extra
              = (guint) ((op->p.mm.batch - 1) / ctx->properties.limits.maxComputeWorkGroupCount[2]);
          pool_info.maxSets += extra;
          pool_size.descriptorCount += extra * MAX_BINDINGS;
        }
    }

  plan->arena_elements = graph->arena_elements;
  plan->n_consts = graph->consts->len;
  plan->const_tensors = g_new0 (StoredTensor, MAX (plan->n_consts, 1));
  if (!umg_vk_buffer_init (ctx, &plan->arena, (VkDeviceSize) graph->arena_elements * 4, FALSE,
                           "activation arena", error)
      || !umg_vk_zero_buffer (ctx, &plan->arena, error))
    goto failed;
  /* constants are few and small: one buffer, all F32 */
  if (!upload_tensors (ctx, (const UmgTensor *const *) graph->consts->pdata, graph->consts->len,
                       "graph constant", FALSE, G_MAXUINT64, const_chunks, plan->const_tensors,
                       error))
    {
      for (guint i = 0; i < const_chunks->len; i++)
        umg_vk_buffer_clear (ctx, &g_array_index (const_chunks, UmgVkBuffer, i));
      goto failed;
    }
  if (const_chunks->len > 0)
    plan->consts = g_array_index (const_chunks, UmgVkBuffer, 0);
  if (!plan_staging (ctx, plan, graph, error))
    goto failed;
  if (!umg_vk_check (vkCreateDescriptorPool (ctx->device, &pool_info, NULL, &plan->descriptor_pool),
                     "vkCreateDescriptorPool", error)
      || !umg_vk_check (vkCreateFence (ctx->device, &fence_info, NULL, &plan->fence),
                        "vkCreateFence", error))
    goto failed;
  if (!record_plan (self, plan, graph, error))
    goto failed;
  if (!umg_vk_context_check_messages (ctx, error))
    goto failed;
  g_debug ("vulkan plan: %u ops, %u dispatches, %u barriers, arena %" G_GSIZE_FORMAT " bytes",
           graph->ops->len, plan->n_dispatches, plan->n_barriers, graph->arena_elements * 4);
  return plan;

failed:
  vulkan_free_plan (backend, plan);
  return NULL;
}

/* Copies of the direct inputs that lie in device memory into their staging slices, then a
 * barrier so that the plan's shaders read them. */
static gboolean
record_prologue (VulkanBackend *self, UmgPlan *plan, const UmgDeviceInput *device_inputs,
                 GError **error)
{
  UmgVkContext *ctx = self->ctx;
  VkCommandBufferAllocateInfo allocate_info = {
    .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
    .commandPool = ctx->command_pool,
    .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
    .commandBufferCount = 1,
  };
  VkCommandBufferBeginInfo begin = {
    .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
    .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
  };
  gboolean ok;

  /* recording uses the command pool, which other threads allocate from (device frames) */
  g_rec_mutex_lock (&ctx->lock);
  ok = (plan->prologue != VK_NULL_HANDLE
        || umg_vk_check (vkAllocateCommandBuffers (ctx->device, &allocate_info, &plan->prologue),
                         "vkAllocateCommandBuffers", error))
       && umg_vk_check (vkResetCommandBuffer (plan->prologue, 0), "vkResetCommandBuffer", error)
       && umg_vk_check (vkBeginCommandBuffer (plan->prologue, &begin), "vkBeginCommandBuffer",
                        error);
  if (ok)
    {
      /* the previous run's shaders are done reading staging before it is written again */
      memory_barrier (plan->prologue,
                      VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0,
                      VK_PIPELINE_STAGE_TRANSFER_BIT, 0);
      /* and the copies that brought the frames to the device are done writing */
      memory_barrier (plan->prologue, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                      VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_READ_BIT);
      for (guint i = 0; i < plan->inputs->len; i++)
        {
          const UmgSlot *slot = &g_array_index (plan->inputs, UmgSlot, i);
          VkBufferCopy region = {
            .srcOffset = device_inputs[i].offset,
            .dstOffset = plan->input_staging_offsets[i],
            .size = slot->n_elements * 4,
          };
          if (device_inputs[i].buffer == VK_NULL_HANDLE || region.size == 0)
            continue;
          vkCmdCopyBuffer (plan->prologue, device_inputs[i].buffer, plan->staging.buffer, 1,
                           &region);
        }
      memory_barrier (plan->prologue, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                      VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                      VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_TRANSFER_READ_BIT);
      ok = umg_vk_check (vkEndCommandBuffer (plan->prologue), "vkEndCommandBuffer", error);
    }
  g_rec_mutex_unlock (&ctx->lock);
  return ok;
}

static gboolean
vulkan_run (UmgBackend *backend, UmgPlan *plan, const void *const *inputs,
            const UmgDeviceInput *device_inputs, void *const *outputs, GError **error)
{
  VulkanBackend *self = (VulkanBackend *) backend;
  UmgVkContext *ctx = self->ctx;
  VkCommandBuffer buffers[2];
  VkSubmitInfo submit = { .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .pCommandBuffers = buffers };
  gboolean on_device = FALSE, ok;

  g_mutex_lock (&self->run_lock);
  if (!umg_vk_context_check_messages (ctx, error))
    {
      g_mutex_unlock (&self->run_lock);
      return FALSE;
    }
  for (guint i = 0; i < plan->inputs->len; i++)
    {
      const UmgSlot *slot = &g_array_index (plan->inputs, UmgSlot, i);
      if (device_inputs != NULL && device_inputs[i].buffer != VK_NULL_HANDLE)
        {
          on_device = TRUE;
          continue;
        }
      /* a direct input (a video frame) is copied exactly: its last row may end at its last
       * pixel */
      memcpy (plan->staging.mapped + plan->input_staging_offsets[i], inputs[i],
              slot->direct ? slot->n_bytes : slot->n_elements * 4);
    }

  ok = !on_device || record_prologue (self, plan, device_inputs, error);
  if (on_device)
    buffers[submit.commandBufferCount++] = plan->prologue;
  buffers[submit.commandBufferCount++] = plan->cmd;
  ok = ok && umg_vk_queue_submit (ctx, 1, &submit, plan->fence, "vkQueueSubmit", error)
       && umg_vk_check (vkWaitForFences (ctx->device, 1, &plan->fence, VK_TRUE, UINT64_MAX),
                        "vkWaitForFences", error)
       && umg_vk_check (vkResetFences (ctx->device, 1, &plan->fence), "vkResetFences", error);

  for (guint i = 0; ok && i < plan->outputs->len; i++)
    memcpy (outputs[i], plan->staging.mapped + plan->output_staging_offsets[i],
            g_array_index (plan->outputs, UmgSlot, i).n_elements * 4);
  ok = ok && umg_vk_context_check_messages (ctx, error);
  g_mutex_unlock (&self->run_lock);
  return ok;
}

static void
vulkan_free (UmgBackend *backend)
{
  VulkanBackend *self = (VulkanBackend *) backend;

  free_weights (self);
  g_clear_pointer (&self->weight_chunks, g_array_unref);
  umg_vk_context_unref (self->ctx);
  g_mutex_clear (&self->run_lock);
  g_free (self->parent.description);
  g_free (self);
}

static const UmgBackendClass vulkan_class = {
  .name = "vulkan",
  .set_weights = vulkan_set_weights,
  .plan = vulkan_plan,
  .run = vulkan_run,
  .free_plan = vulkan_free_plan,
  .free = vulkan_free,
};

static UmgBackend *
backend_for_context (UmgVkContext *ctx)
{
  VulkanBackend *self = g_new0 (VulkanBackend, 1);

  self->parent.klass = &vulkan_class;
  self->parent.copies_direct_inputs = TRUE;
  self->parent.description = g_strdup_printf ("vulkan: %s%s", ctx->properties.deviceName,
                                              ctx->adopted ? " (shared device)" : "");
  self->ctx = ctx;
  for (guint i = 0; i < ctx->memory_properties.memoryHeapCount; i++)
    if (ctx->memory_properties.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
      self->parent.memory_bytes
          = MAX (self->parent.memory_bytes, ctx->memory_properties.memoryHeaps[i].size);
  self->weight_chunks = g_array_new (FALSE, TRUE, sizeof (UmgVkBuffer));
  /* UMGCLIP_VK_MATMUL=tiled|direct overrides the choice, so tests cover both on lavapipe */
  if (g_getenv ("UMGCLIP_VK_MATMUL") != NULL)
    self->direct_matmul = g_strcmp0 (g_getenv ("UMGCLIP_VK_MATMUL"), "direct") == 0;
  else
    self->direct_matmul = ctx->properties.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
  g_mutex_init (&self->run_lock);
  return &self->parent;
}

UmgBackend *
umg_backend_vulkan_new (gint device_index, gboolean allow_cpu_device, GError **error)
{
  UmgVkContext *ctx = umg_vk_context_new (device_index, allow_cpu_device, error);
  return ctx != NULL ? backend_for_context (ctx) : NULL;
}

UmgBackend *
umg_backend_vulkan_new_adopted (const UmgClipVulkanDevice *device, GError **error)
{
  UmgVkContext *ctx = umg_vk_context_new_adopted (device, error);
  return ctx != NULL ? backend_for_context (ctx) : NULL;
}

UmgVkContext *
umg_backend_vulkan_get_context (UmgBackend *backend)
{
  return backend != NULL && backend->klass == &vulkan_class ? ((VulkanBackend *) backend)->ctx
                                                            : NULL;
}

gboolean
umg_backend_vulkan_has_gpu (void)
{
  return umg_vk_has_gpu ();
}
