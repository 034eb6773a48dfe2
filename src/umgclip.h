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

UmgClipContext *umgclip_context_new (const gchar *model_dir, UmgClipDeviceKind device,
                                     gint device_index, GError **error);
void umgclip_context_free (UmgClipContext *ctx);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (UmgClipContext, umgclip_context_free)

const UmgClipInfo *umgclip_context_get_info (UmgClipContext *ctx);

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

G_END_DECLS
