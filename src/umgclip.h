/* libumgclip: load a CLIP-family model directory once, then encode images, text, dense
 * text-aligned feature maps and regions on the Vulkan or CPU backend. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define UMGCLIP_ERROR (umgclip_error_quark ())
GQuark umgclip_error_quark (void);

typedef enum
{
  UMGCLIP_ERROR_FILE,     /* missing or unreadable file */
  UMGCLIP_ERROR_FORMAT,   /* bad JSON, truncated or inconsistent safetensors */
  UMGCLIP_ERROR_MODEL,    /* tensor missing or of the wrong shape, bad config value */
  UMGCLIP_ERROR_ARGUMENT, /* bad value passed by the caller */
  UMGCLIP_ERROR_DEVICE,   /* no such device, device lost, out of device memory */
} UmgClipError;

typedef enum
{
  UMGCLIP_DEVICE_AUTO, /* a real GPU through Vulkan, else the CPU */
  UMGCLIP_DEVICE_CPU,
  UMGCLIP_DEVICE_VULKAN, /* any Vulkan device, lavapipe included */
} UmgClipDeviceKind;

typedef enum
{
  UMGCLIP_DENSE_NACLIP,    /* softmax(s K Kᵀ + Gaussian neighbourhood) */
  UMGCLIP_DENSE_CLEARCLIP, /* softmax(s Q Qᵀ) */
  UMGCLIP_DENSE_SCLIP,     /* softmax(s Q Qᵀ) + softmax(s K Kᵀ) */
  UMGCLIP_DENSE_MASKCLIP,  /* identity: each token keeps its own value */
} UmgClipDenseMode;

/* Parse "auto", "cpu", "vulkan" or "vulkan:N"; NULL or "" is auto. */
gboolean umgclip_parse_device (const gchar *text, UmgClipDeviceKind *kind, gint *index,
                               GError **error);
/* The device a context opened with (kind, index) would run on: auto becomes cpu or the Vulkan
 * GPU the runtime would pick, vulkan the device it would pick; out_index is -1 for cpu. Two
 * spellings of one physical device resolve alike, so callers can share one context per device. */
gboolean umgclip_resolve_device (UmgClipDeviceKind kind, gint index, UmgClipDeviceKind *out_kind,
                                 gint *out_index, GError **error);
gboolean umgclip_parse_dense_mode (const gchar *text, UmgClipDenseMode *mode, GError **error);
const gchar *umgclip_dense_mode_name (UmgClipDenseMode mode);

typedef struct _UmgClipContext UmgClipContext;

typedef struct
{
  const gchar *layout; /* "huggingface" or "openclip" */
  const gchar *dtype;  /* storage type of the checkpoint: "f32", "f16", "bf16" */
  gint embed_dim;      /* projection dimension shared by both towers */
  gint image_size, patch_size, vision_width, vision_layers, vision_heads;
  gint text_width, text_layers, text_heads, context_length, vocab_size;
  const gchar *vision_act, *text_act;
  gfloat logit_scale;   /* exp() already applied */
  const gchar *backend; /* description of the backend in use */
} UmgClipInfo;

/* The model used when none is named: $UMGCLIP_MODEL when set, else the shipped model
 * (models/umgclip-tiny) where it was installed, else where the build found it. */
const gchar *umgclip_default_model (void);

UmgClipContext *umgclip_context_new (const gchar *model_dir, UmgClipDeviceKind device,
                                     gint device_index, GError **error);
void umgclip_context_free (UmgClipContext *ctx);
/* Whether one image pass at width x height fits the device together with the weights (limit:
 * UMGCLIP_MEMORY_LIMIT when set, else what the device reports); UMGCLIP_ERROR_DEVICE naming the
 * model, the size and the limit when not. Elements call it at start with their input-size. */
gboolean umgclip_context_check_input_size (UmgClipContext *ctx, gint width, gint height,
                                           GError **error);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (UmgClipContext, umgclip_context_free)

const UmgClipInfo *umgclip_context_get_info (UmgClipContext *ctx);

/* Planned graphs are kept in a least-recently-used cache of this many per context: a stream of
 * one frame size plans once, and nothing grows without bound. */
#define UMGCLIP_PLAN_CACHE_SIZE 16
/* Planned graphs the context holds now (at most UMGCLIP_PLAN_CACHE_SIZE), and how many it has
 * made since it was created. */
guint umgclip_context_get_plan_count (UmgClipContext *ctx, guint *plans_made);

/* Fault injection for tests and for users who want to see recovery work: with
 * UMGCLIP_FAIL_RUNS=K[,L...] in the environment, the K-th (L-th, ...) backend run of the process
 * fails with UMGCLIP_ERROR_DEVICE as a lost device would; "K-" fails the K-th run and every run
 * after it. Runs are counted over every context of the process, text and image alike. */

/* tokens receives context_length ids: start, text, end, then zeros. Returns the number of
 * ids before the padding. */
gint umgclip_tokenize (UmgClipContext *ctx, const gchar *text, gint32 *tokens, GError **error);

/* out: n_texts × embed_dim, projected, not normalised. */
gboolean umgclip_encode_text (UmgClipContext *ctx, const gchar *const *texts, guint n_texts,
                              gfloat *out, GError **error);

/* What one pass of the vision tower should produce. Pointers left NULL are not computed. */
typedef struct
{
  UmgClipDenseMode dense_mode;
  gfloat *embedding;   /* embed_dim, projected, not normalised */
  gfloat *dense;       /* (height / patch) × (width / patch) × embed_dim, not normalised */
  const gfloat *boxes; /* n_boxes × (x, y, w, h) in input pixels */
  guint n_boxes;
  gfloat *regions; /* n_boxes × embed_dim, L2-normalised */
  /* Set by the runtime: frame-sized copies the host made to bring this image's frame to the
   * backend (1 for a frame in host memory on Vulkan, 0 on the CPU backend, which reads the
   * frame where it lies, and 0 for frames already on the device). */
  guint host_copies;
} UmgClipImageRequest;

/* pixels: [3, height, width] float32, already normalised with the model's mean and std. */
gboolean umgclip_encode_image (UmgClipContext *ctx, const gfloat *pixels, gint width, gint height,
                               UmgClipImageRequest *request, GError **error);

/* Prepare an RGB8 image the way CLIP does: resize the shorter side to size (bicubic with
 * antialiasing), centre-crop to size × size, scale to [0, 1], normalise with the model's mean
 * and std. size <= 0: the model's image size. out: [3, size, size]. */
void umgclip_preprocess_rgb (UmgClipContext *ctx, const guint8 *rgb, gint width, gint height,
                             gint stride, gint size, gfloat *out);

/* Zero-shot label embeddings: for each label, every template ("a photo of a {}.") is
 * encoded, normalised and averaged, and the mean normalised again (CLIP's prompt
 * ensembling). templates NULL: the label alone. out: n_labels × embed_dim. */
gboolean umgclip_encode_labels (UmgClipContext *ctx, const gchar *const *labels, guint n_labels,
                                const gchar *const *templates, guint n_templates, gfloat *out,
                                GError **error);

/* Scores of one image embedding against normalised label embeddings: softmax over
 * logit_scale × cosine. scores: n_labels. */
void umgclip_score (UmgClipContext *ctx, const gfloat *image_embedding,
                    const gfloat *label_embeddings, guint n_labels, gfloat *scores);

void umgclip_l2_normalize (gfloat *v, gsize n);

/* Region embeddings: aligned RoI-Align with UMGCLIP_ROI_OUTPUT_SIZE² bins of
 * UMGCLIP_ROI_SAMPLING² bilinear samples each, averaged and L2-normalised, as the regions of
 * umgclip_encode_image (which pool the map inside the pass). dense: grid_h × grid_w × dim;
 * boxes: n_boxes × (x, y, w, h) in units of which scale_x / scale_y map to cells (1 / patch
 * size for network-input pixels, grid / frame size for frame pixels). out: n_boxes × dim. */
#define UMGCLIP_ROI_OUTPUT_SIZE 7
#define UMGCLIP_ROI_SAMPLING 2
void umgclip_roi_align (const gfloat *dense, gint grid_w, gint grid_h, gint dim, gfloat scale_x,
                        gfloat scale_y, const gfloat *boxes, guint n_boxes, gfloat *out);

/* ---- Video frames to network input (frame.c) ---- */

/* Frame layouts accepted without conversion by the caller: packed 8-bit RGB variants
 * (stride in bytes per row) and 4:2:0 YUV; each YUV pixel uses the chroma sample that covers
 * it. Names as GStreamer's video formats. */
typedef enum
{
  UMGCLIP_FORMAT_RGB,  /* plane 0: R G B */
  UMGCLIP_FORMAT_RGBA, /* plane 0: R G B A (alpha ignored) */
  UMGCLIP_FORMAT_RGBX, /* plane 0: R G B x */
  UMGCLIP_FORMAT_BGRX, /* plane 0: B G R x */
  UMGCLIP_FORMAT_BGRA, /* plane 0: B G R A (alpha ignored) */
  UMGCLIP_FORMAT_NV12, /* plane 0: Y; plane 1: Cb Cr interleaved, half width and height */
  UMGCLIP_FORMAT_I420, /* plane 0: Y; plane 1: Cb; plane 2: Cr, half width and height */
} UmgClipPixelFormat;

/* "RGB", "RGBA", "RGBx", "BGRx", "BGRA", "NV12", "I420" (GStreamer's names). */
gboolean umgclip_pixel_format_parse (const gchar *name, UmgClipPixelFormat *format, GError **error);
const gchar *umgclip_pixel_format_name (UmgClipPixelFormat format);

/* A video frame as captured. For YUV formats, kr / kb give the colour matrix (0, 0: BT.601,
 * Kr 0.299, Kb 0.114; BT.709 is 0.2126, 0.0722) and full_range says whether luma and chroma
 * use 0..255 rather than the limited 16..235 / 16..240:
 *   R = Y' + 2 (1 - Kr) Cr',  G = Y' - 2 Kb (1 - Kb) / Kg Cb' - 2 Kr (1 - Kr) / Kg Cr',
 *   B = Y' + 2 (1 - Kb) Cb',  Kg = 1 - Kr - Kb,
 * with Y' = 255 / 219 (Y - 16), Cb' = 255 / 224 (Cb - 128) in limited range (Y' = Y,
 * Cb' = Cb - 128 in full range), clamped to 0..255. */
typedef struct _UmgClipDeviceFrame UmgClipDeviceFrame;

typedef struct
{
  UmgClipPixelFormat format;
  gint width, height;
  const guint8 *planes[3]; /* planes the format does not use are ignored (may be NULL) */
  gint strides[3];         /* bytes per row */
  gfloat kr, kb;
  gboolean full_range;
  /* Or: the frame's bytes already on the device (umgclip-vulkan.h), laid out with strides;
   * planes are then ignored. */
  const UmgClipDeviceFrame *device;
} UmgClipFrame;

/* A rectangle of a frame, in frame pixels. */
typedef struct
{
  gint x, y, width, height;
} UmgClipCrop;

/* Convert a frame to the network's input: colour conversion to RGB, bilinear resize to
 * out_w × out_h (half-pixel centres, edge clamp, no antialias: PyTorch's F.interpolate
 * (mode="bilinear", align_corners=False)), then (value / 255 - mean) / std per channel. The
 * aspect ratio is not kept: crop or letterbox by passing offset planes and a smaller width /
 * height. out: [3, out_h, out_w] float32. */
gboolean umgclip_frame_to_tensor (const UmgClipFrame *frame, gint out_w, gint out_h,
                                  const gfloat mean[3], const gfloat std[3], gfloat *out,
                                  GError **error);

/* One vision pass on a video frame as it was captured: the frame is uploaded once and
 * converted, resized to width × height (the network input) and normalised by the backend
 * (a compute shader on Vulkan), with exactly the arithmetic of umgclip_frame_to_tensor.
 * The last row of each plane may end right after its last pixel. */
gboolean umgclip_encode_frame (UmgClipContext *ctx, const UmgClipFrame *frame, gint width,
                               gint height, UmgClipImageRequest *request, GError **error);

/* Several images in one batched pass, each exactly as umgclip_encode_frame would compute it
 * alone. Image i is the crop crops[i] (NULL: whole frames; a crop is clamped to its frame) of
 * frames[n_frames == 1 ? 0 : i], resized to width × height, with requests[i]. n_frames is 1
 * (crops of one frame, as a tagger's boxes) or n_images. All frames share one layout (format,
 * size, strides, colour matrix, range, host or device memory) and all requests one dense mode;
 * passes hold at most UMGCLIP_MAX_BATCH images, more are split. */
#define UMGCLIP_MAX_BATCH 8
gboolean umgclip_encode_frames (UmgClipContext *ctx, const UmgClipFrame *frames, guint n_frames,
                                const UmgClipCrop *crops, guint n_images, gint width, gint height,
                                UmgClipImageRequest *requests, GError **error);

/* The model's pixel normalisation (RGB order, on values scaled to 0..1). */
void umgclip_get_pixel_stats (UmgClipContext *ctx, gfloat mean[3], gfloat std[3]);

/* ---- Segmentation and region tags from dense maps (segment.c) ---- */

#define UMGCLIP_CLASS_NONE 0xFFFF /* class_map value of pixels no label claims */

typedef struct
{
  guint id;          /* 1..n_segments, in raster order of the segment's first pixel */
  guint label_id;    /* index into the label list */
  gfloat score;      /* mean over the segment's pixels of their best softmax probability */
  gboolean is_thing; /* an instance of a thing label; FALSE: all pixels of a stuff label */
  gint x, y, w, h;   /* bounding box in mask pixels */
  guint area;        /* pixels */
} UmgClipSegment;

typedef struct
{
  gint width, height;       /* mask size */
  guint16 *class_map;       /* width × height label ids, UMGCLIP_CLASS_NONE where none */
  gfloat *score_map;        /* width × height best softmax probability (kept where none too) */
  guint16 *instance_map;    /* width × height segment ids, 0 where none */
  UmgClipSegment *segments; /* n_segments, by id */
  guint n_segments;
} UmgClipSegmentation;

/* Semantic and panoptic segmentation of a dense map for free-text labels.
 * dense: [grid_h, grid_w, dim] as umgclip_encode_image returns it (not normalised);
 * label_embeddings: [n_labels, dim], L2-normalised (umgclip_encode_labels).
 * Each cell's cosine with each label, times logit_scale, is upsampled bilinearly to
 * mask_w × mask_h (half-pixel centres, edge clamp, like F.interpolate (mode="bilinear")),
 * then softmax over labels per pixel: class = argmax, score = its probability. Pixels whose
 * score is below threshold (0..1) get UMGCLIP_CLASS_NONE.
 * Segments: with panoptic, labels whose is_thing flag is set are split into instances (8-
 * connected components) and every other label is one segment however scattered; without
 * panoptic (or with is_thing NULL) every label is one segment.
 * Joining (panoptic only): thing instances that touch, or face each other across at most half
 * a grid cell of pixels no label reached (the threshold), are joined into one when their
 * centred features agree: the mean over their pixels of the L2-normalised cells, less the
 * frame's mean cell, has a cosine of at least thing_affinity between the two. A joined thing
 * takes the thing label nearest to its mask-pooled embedding (umgclip_mask_pool, as umgcliptag
 * tags segments), and its pixels take that label in class_map: one object whose parts the
 * labels split is one instance. thing_affinity -1 joins every such pair; above 1 joins none.
 * Then segments smaller than min_area pixels are dropped and their pixels become none in both
 * maps.
 * out is overwritten (not freed first); release it with umgclip_segmentation_clear. Errors:
 * UMGCLIP_ERROR_ARGUMENT for bad sizes, no labels, more than 65534 labels or segments. */
/* umgclipseg's thing-affinity by default */
#define UMGCLIP_DEFAULT_THING_AFFINITY 0.7

gboolean umgclip_segment (const gfloat *dense, gint grid_w, gint grid_h, gint dim,
                          const gfloat *label_embeddings, guint n_labels, const gboolean *is_thing,
                          gfloat logit_scale, gint mask_w, gint mask_h, gfloat threshold,
                          guint min_area, gfloat thing_affinity, gboolean panoptic,
                          UmgClipSegmentation *out, GError **error);

/* Frees what umgclip_segment allocated and zeroes seg; safe on a zeroed or cleared struct. */
void umgclip_segmentation_clear (UmgClipSegmentation *seg);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (UmgClipSegmentation, umgclip_segmentation_clear)

/* Region tags: for each of n embeddings [n, dim] (normalised again here, so any length
 * works), the top_k labels by softmax over logit_scale × cosine with all n_labels label
 * embeddings, best first (ties: lower label id first). ids_out and scores_out: n × top_k.
 * top_k must be 1..n_labels. */
gboolean umgclip_rank_labels (const gfloat *embeddings, guint n, gint dim,
                              const gfloat *label_embeddings, guint n_labels, gfloat logit_scale,
                              guint top_k, guint *ids_out, gfloat *scores_out, GError **error);

/* Mask average of a dense map [grid_h, grid_w, dim] over segments: every pixel of map (a
 * mask_w × mask_h array of values, 16-bit when wide, else 8-bit) whose value is values[r]
 * adds its bilinear weights on the grid (half-pixel centres, edge clamp, as the segmentation
 * upsamples) to segment r, and out[r] (n_values × dim) is that weighted sum of cells,
 * L2-normalised; segments without pixels come out zero. */
void umgclip_mask_pool (const gfloat *dense, gint grid_w, gint grid_h, gint dim, const guint8 *map,
                        gboolean wide, gint mask_w, gint mask_h, const guint *values,
                        guint n_values, gfloat *out);

/* The crop to re-encode for a box (x, y, w, h in frame pixels) of a frame of format: clipped
 * to the frame, at least one pixel, its origin moved onto the chroma grid of 4:2:0 formats so
 * that chroma is read as for a frame of the crop's size. */
void umgclip_crop_for_box (UmgClipPixelFormat format, gint frame_width, gint frame_height, gint x,
                           gint y, gint w, gint h, UmgClipCrop *out);

/* ---- Nearest vectors (search.c) ---- */

typedef struct
{
  gint64 id;
  gfloat score;
} UmgClipScored;

/* The best k of scored items: higher scores first, equal scores by lower id. Scores come from
 * umgclip_top_k_score (cosine of L2-normalised vectors [n, dim] with query) or are pushed one
 * at a time. */
typedef struct _UmgClipTopK UmgClipTopK;
UmgClipTopK *umgclip_top_k_new (guint k);
void umgclip_top_k_push (UmgClipTopK *top, gint64 id, gfloat score);
void umgclip_top_k_score (UmgClipTopK *top, const gfloat *vectors, const gint64 *ids, gsize n,
                          gint dim, const gfloat *query);
/* The kept items, best first; valid until the next push or free. */
const UmgClipScored *umgclip_top_k_finish (UmgClipTopK *top, guint *n);
void umgclip_top_k_free (UmgClipTopK *top);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (UmgClipTopK, umgclip_top_k_free)

/* ---- Label lists (labels.c) ---- */

/* Items of text separated by any character of separators, each stripped of surrounding
 * whitespace, empty items dropped; NULL text gives an empty list. Bytes that are not UTF-8
 * become U+FFFD (callers that can report it check umgclip_check_utf8 first). Free with
 * g_strfreev. */
GStrv umgclip_split_list (const gchar *text, const gchar *separators);

/* TRUE when text (NULL included) is UTF-8; else FALSE with an error that names what (e.g.
 * "labels-file '/x/labels.txt'") and the offset of the first bad byte. */
gboolean umgclip_check_utf8 (const gchar *what, const gchar *text, GError **error);

/* Prompt templates from text: "imagenet" means OpenAI's 80 ImageNet templates (CLIP's prompt
 * ensemble), anything else templates separated by ';' ({} marks the label). Free with
 * g_strfreev. */
GStrv umgclip_prompt_templates (const gchar *text);

/* is_thing for each label: FALSE for the labels that stuff (a comma-separated list) names,
 * compared case-insensitively, TRUE for every other label. Free with g_free. */
gboolean *umgclip_things_from_stuff (const gchar *const *labels, guint n_labels,
                                     const gchar *stuff);

/* ---- Vulkan devices (vk_context.c) ---- */

/* The device_index for umgclip_context_new (UMGCLIP_DEVICE_VULKAN) of the Vulkan physical device
 * whose VkPhysicalDeviceIDProperties.deviceUUID is uuid, so that the model runs on the same
 * device as, say, a GStreamer Vulkan element. UMGCLIP_ERROR_DEVICE when none matches. */
gboolean umgclip_vulkan_device_index_for_uuid (const guint8 uuid[16], gint *index, GError **error);

G_END_DECLS
