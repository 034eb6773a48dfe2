/* The public API: load a model onto a backend, plan each graph on first use and keep it,
 * run passes, and score images against labels. */
#include "context.h"

#include "frame.h"
#include "segment.h"
#include "text.h"
#include "vit.h"

#include <math.h>
#include <string.h>

/* Text passes run this many sequences at once at most. */
#define TEXT_BATCH 16

G_DEFINE_QUARK (umgclip - error - quark, umgclip_error)

typedef struct
{
  UmgGraph *graph;
  UmgPlan *plan;
  UmgBackend *backend;
} PlannedGraph;

static void
planned_graph_free (gpointer data)
{
  PlannedGraph *planned = data;
  if (planned->plan != NULL)
    planned->backend->klass->free_plan (planned->backend, planned->plan);
  umg_graph_free (planned->graph);
  g_free (planned);
}

gboolean
umgclip_parse_device (const gchar *text, UmgClipDeviceKind *kind, gint *index, GError **error)
{
  *index = -1;
  if (text == NULL || *text == '\0' || g_strcmp0 (text, "auto") == 0)
    *kind = UMGCLIP_DEVICE_AUTO;
  else if (g_strcmp0 (text, "cpu") == 0)
    *kind = UMGCLIP_DEVICE_CPU;
  else if (g_strcmp0 (text, "vulkan") == 0)
    *kind = UMGCLIP_DEVICE_VULKAN;
  else if (g_str_has_prefix (text, "vulkan:"))
    {
      guint64 value;
      if (!g_ascii_string_to_unsigned (text + 7, 10, 0, 255, &value, NULL))
        goto bad;
      *kind = UMGCLIP_DEVICE_VULKAN;
      *index = value;
    }
  else
    goto bad;
  return TRUE;

bad:
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
               "unknown device '%s' (auto, cpu, vulkan or vulkan:N)", text);
  return FALSE;
}

static const gchar *const dense_mode_names[] = { "naclip", "clearclip", "sclip", "maskclip" };

const gchar *
umgclip_dense_mode_name (UmgClipDenseMode mode)
{
  return mode < G_N_ELEMENTS (dense_mode_names) ? dense_mode_names[mode] : "unknown";
}

gboolean
umgclip_parse_dense_mode (const gchar *text, UmgClipDenseMode *mode, GError **error)
{
  for (guint i = 0; i < G_N_ELEMENTS (dense_mode_names); i++)
    if (g_strcmp0 (text, dense_mode_names[i]) == 0)
      {
        *mode = i;
        return TRUE;
      }
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
               "unknown dense mode '%s' (naclip, clearclip, sclip or maskclip)",
               text ? text : "(null)");
  return FALSE;
}

static const gchar *
activation_name (UmgActivation act)
{
  return act == UMG_ACT_GELU ? "gelu" : "quick_gelu";
}

const gchar *
umgclip_default_model (void)
{
  const gchar *from_env = g_getenv ("UMGCLIP_MODEL");
  if (from_env != NULL && *from_env != '\0')
    return from_env;
  if (g_file_test (UMGCLIP_INSTALLED_MODEL, G_FILE_TEST_IS_DIR))
    return UMGCLIP_INSTALLED_MODEL;
  return UMGCLIP_SOURCE_MODEL;
}

UmgClipContext *
umgclip_context_new (const gchar *model_dir, UmgClipDeviceKind device, gint device_index,
                     GError **error)
{
  g_autoptr (UmgClipContext) ctx = g_new0 (UmgClipContext, 1);
  UmgModel *model;

  g_mutex_init (&ctx->lock);
  ctx->graphs = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, planned_graph_free);
  ctx->model = model = umg_model_load (model_dir, error);
  if (model == NULL)
    return NULL;

  if (device == UMGCLIP_DEVICE_AUTO)
    device = umg_backend_vulkan_has_gpu () ? UMGCLIP_DEVICE_VULKAN : UMGCLIP_DEVICE_CPU;
  ctx->backend = device == UMGCLIP_DEVICE_CPU ? umg_backend_cpu_new (error)
                                              : umg_backend_vulkan_new (device_index, TRUE, error);
  if (ctx->backend == NULL)
    return NULL;
  if (!ctx->backend->klass->set_weights (ctx->backend, (const UmgTensor *) model->weights->data,
                                         model->weights->len, error))
    return NULL;

  ctx->info = (UmgClipInfo){
    .layout = model->layout,
    .dtype = model->dtype,
    .embed_dim = model->embed_dim,
    .image_size = model->vision.image_size,
    .patch_size = model->vision.patch_size,
    .vision_width = model->vision.tower.width,
    .vision_layers = model->vision.tower.layers,
    .vision_heads = model->vision.tower.heads,
    .text_width = model->text.tower.width,
    .text_layers = model->text.tower.layers,
    .text_heads = model->text.tower.heads,
    .context_length = model->text.context_length,
    .vocab_size = model->text.vocab_size,
    .vision_act = activation_name (model->vision.tower.act),
    .text_act = activation_name (model->text.tower.act),
    .logit_scale = model->logit_scale,
    .backend = ctx->backend->description,
  };
  return g_steal_pointer (&ctx);
}

void
umgclip_context_free (UmgClipContext *ctx)
{
  if (ctx == NULL)
    return;
  /* plans belong to the backend: free them first */
  g_clear_pointer (&ctx->graphs, g_hash_table_unref);
  g_clear_pointer (&ctx->backend, umg_backend_free);
  g_clear_pointer (&ctx->tokenizer, umg_tokenizer_free);
  g_clear_pointer (&ctx->model, umg_model_free);
  g_mutex_clear (&ctx->lock);
  g_free (ctx);
}

const UmgClipInfo *
umgclip_context_get_info (UmgClipContext *ctx)
{
  return &ctx->info;
}

/* The planned graph for key, built by build() on first use. Call with the lock held. */
static PlannedGraph *
planned_graph (UmgClipContext *ctx, const gchar *key,
               UmgGraph *(*build) (UmgClipContext *ctx, gconstpointer spec, GError **error),
               gconstpointer spec, GError **error)
{
  PlannedGraph *planned = g_hash_table_lookup (ctx->graphs, key);
  UmgGraph *graph;

  if (planned != NULL)
    return planned;
  graph = build (ctx, spec, error);
  if (graph == NULL)
    return NULL;
  planned = g_new0 (PlannedGraph, 1);
  planned->graph = graph;
  planned->backend = ctx->backend;
  planned->plan = ctx->backend->klass->plan (ctx->backend, graph, error);
  if (planned->plan == NULL)
    {
      planned_graph_free (planned);
      return NULL;
    }
  g_hash_table_insert (ctx->graphs, g_strdup (key), planned);
  return planned;
}

static gboolean
run_planned (UmgClipContext *ctx, PlannedGraph *planned, const void *const *inputs,
             void *const *outputs, GError **error)
{
  return ctx->backend->klass->run (ctx->backend, planned->plan, inputs, outputs, error);
}

/* ---- text ---- */

static gboolean
ensure_tokenizer (UmgClipContext *ctx, GError **error)
{
  if (ctx->tokenizer == NULL)
    {
      ctx->tokenizer = umg_tokenizer_new_from_dir (ctx->model->dir, error);
      if (ctx->tokenizer == NULL)
        return FALSE;
    }
  return TRUE;
}

gint
umgclip_tokenize (UmgClipContext *ctx, const gchar *text, gint32 *tokens, GError **error)
{
  gint count;
  g_mutex_lock (&ctx->lock);
  count = ensure_tokenizer (ctx, error)
              ? umg_tokenizer_encode (ctx->tokenizer, text, tokens, ctx->model->text.context_length)
              : -1;
  g_mutex_unlock (&ctx->lock);
  return count;
}

typedef struct
{
  gint n_seq, length;
} TextSpec;

static UmgGraph *
build_text_graph (UmgClipContext *ctx, gconstpointer spec, GError **error)
{
  const TextSpec *text = spec;
  return umg_text_graph_new (ctx->model, text->n_seq, text->length);
}

/* Token rows of a pass: the longest text of the batch, rounded up to a multiple of 8 so that
 * label lists of similar lengths share a few planned graphs. */
static gint
pass_length (const gint *counts, gint n_seq, gint context_length)
{
  gint longest = 2;
  for (gint s = 0; s < n_seq; s++)
    longest = MAX (longest, counts[s]);
  return MIN ((longest + 7) / 8 * 8, context_length);
}

static gboolean
encode_text_batch (UmgClipContext *ctx, const gchar *const *texts, gint n_seq, gfloat *out,
                   GError **error)
{
  const gint context_length = ctx->model->text.context_length;
  const gint32 end_id = umg_tokenizer_end_id (ctx->tokenizer);
  g_autofree gint32 *tokenized = g_new0 (gint32, (gsize) n_seq * context_length);
  g_autofree gint *counts = g_new0 (gint, n_seq);
  g_autofree gint32 *ids = NULL;
  g_autofree gint32 *ends = g_new0 (gint32, n_seq);
  g_autofree gchar *key = NULL;
  TextSpec spec = { n_seq, 0 };
  PlannedGraph *planned;

  for (gint s = 0; s < n_seq; s++)
    {
      gint32 *seq = tokenized + (gsize) s * context_length;
      counts[s] = umg_tokenizer_encode (ctx->tokenizer, texts[s], seq, context_length);
      for (gint i = 0; i < counts[s]; i++)
        if (seq[i] < 0 || seq[i] >= ctx->model->text.vocab_size)
          {
            g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_MODEL,
                         "%s: token id %d of \"%s\" is outside the model's vocabulary of %d "
                         "(tokenizer files do not match the checkpoint)",
                         ctx->model->dir, seq[i], texts[s], ctx->model->text.vocab_size);
            return FALSE;
          }
    }
  spec.length = pass_length (counts, n_seq, context_length);
  ids = g_new0 (gint32, (gsize) n_seq * spec.length);
  for (gint s = 0; s < n_seq; s++)
    {
      const gint32 *seq = tokenized + (gsize) s * context_length;
      memcpy (ids + (gsize) s * spec.length, seq, spec.length * sizeof (gint32));
      ends[s] = s * spec.length + counts[s] - 1;
      for (gint i = 0; i < counts[s]; i++)
        if (seq[i] == end_id)
          {
            ends[s] = s * spec.length + i;
            break;
          }
    }
  key = g_strdup_printf ("text %dx%d", n_seq, spec.length);
  planned = planned_graph (ctx, key, build_text_graph, &spec, error);
  if (planned == NULL)
    return FALSE;
  return run_planned (ctx, planned, (const void *[]){ ids, ends }, (void *[]){ out }, error);
}

gboolean
umgclip_encode_text (UmgClipContext *ctx, const gchar *const *texts, guint n_texts, gfloat *out,
                     GError **error)
{
  gboolean ok = TRUE;
  g_mutex_lock (&ctx->lock);
  ok = ensure_tokenizer (ctx, error);
  for (guint first = 0; ok && first < n_texts; first += TEXT_BATCH)
    ok = encode_text_batch (ctx, texts + first, MIN (TEXT_BATCH, n_texts - first),
                            out + (gsize) first * ctx->model->embed_dim, error);
  g_mutex_unlock (&ctx->lock);
  return ok;
}

/* ---- image ---- */

static UmgGraph *
build_vision_graph (UmgClipContext *ctx, gconstpointer spec, GError **error)
{
  return umg_vision_graph_new (ctx->model, spec, error);
}

/* One vision pass for spec (size, and the frame layout when input is a raw frame) and the
 * request's outputs. */
static gboolean
encode_vision (UmgClipContext *ctx, UmgVisionSpec *spec, const void *input,
               UmgClipImageRequest *request, GError **error)
{
  const gint embed = ctx->model->embed_dim, patch = ctx->model->vision.patch_size;
  const gsize cells = (gsize) (spec->height / patch) * (spec->width / patch);
  g_autofree gchar *key = NULL;
  g_autofree gfloat *scratch_embedding = NULL, *scratch_dense = NULL, *scratch_regions = NULL;
  g_autofree gfloat *boxes = NULL;
  gfloat *embedding, *dense, *regions = NULL;
  PlannedGraph *planned;
  gboolean ok;

  if (spec->width <= 0 || spec->height <= 0 || spec->width > 8192 || spec->height > 8192)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "image size %dx%d is out of range (1..8192)", spec->width, spec->height);
      return FALSE;
    }
  spec->dense = request->dense != NULL || request->n_boxes > 0;
  spec->dense_mode = request->dense_mode;
  /* plan region slots in steps of 8 so a changing box count rarely needs a new plan */
  spec->box_capacity = (request->n_boxes + 7) / 8 * 8;
  if ((guint) spec->dense_mode > UMGCLIP_DENSE_MASKCLIP)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "unknown dense mode %d",
                   spec->dense_mode);
      return FALSE;
    }
  if (request->n_boxes > 0 && (request->boxes == NULL || request->regions == NULL))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "%u boxes requested without box or region arrays", request->n_boxes);
      return FALSE;
    }
  key = g_strdup_printf (
      "vision %dx%d dense=%d mode=%s boxes=%d frame=%d %dx%d %d,%d,%d yuv=%g,%g,%d", spec->width,
      spec->height, spec->dense, spec->dense ? umgclip_dense_mode_name (spec->dense_mode) : "-",
      spec->box_capacity, spec->frame_format, spec->frame_width, spec->frame_height,
      spec->frame_strides[0], spec->frame_strides[1], spec->frame_strides[2], spec->frame_kr,
      spec->frame_kb, spec->frame_full_range);

  /* the backend writes straight into the caller's arrays; scratch only for outputs the graph
   * produces but the caller did not ask for, and for the unused region slots */
  embedding = request->embedding != NULL ? request->embedding
                                         : (scratch_embedding = g_new (gfloat, embed));
  dense = request->dense != NULL || !spec->dense ? request->dense
                                                 : (scratch_dense = g_new (gfloat, cells * embed));
  if (spec->box_capacity > 0)
    {
      boxes = g_new0 (gfloat, 4 * (gsize) spec->box_capacity);
      regions = (guint) spec->box_capacity == request->n_boxes
                    ? request->regions
                    : (scratch_regions = g_new (gfloat, (gsize) spec->box_capacity * embed));
      umg_vision_boxes_to_cells (ctx->model, request->boxes, request->n_boxes, boxes);
    }

  g_mutex_lock (&ctx->lock);
  planned = planned_graph (ctx, key, build_vision_graph, spec, error);
  ok = planned != NULL
       && run_planned (ctx, planned, (const void *[]){ input, boxes },
                       (void *[]){ embedding, dense, regions }, error);
  g_mutex_unlock (&ctx->lock);
  if (!ok)
    return FALSE;
  if (scratch_regions != NULL)
    memcpy (request->regions, regions, (gsize) request->n_boxes * embed * sizeof (gfloat));
  return TRUE;
}

gboolean
umgclip_encode_image (UmgClipContext *ctx, const gfloat *pixels, gint width, gint height,
                      UmgClipImageRequest *request, GError **error)
{
  UmgVisionSpec spec = { .width = width, .height = height, .frame_format = -1 };
  return encode_vision (ctx, &spec, pixels, request, error);
}

gboolean
umgclip_encode_frame (UmgClipContext *ctx, const UmgClipFrame *frame, gint width, gint height,
                      UmgClipImageRequest *request, GError **error)
{
  UmgVisionSpec spec = {
    .width = width,
    .height = height,
    .frame_format = frame->format,
    .frame_width = frame->width,
    .frame_height = frame->height,
    .frame_kr = frame->kr,
    .frame_kb = frame->kb,
    .frame_full_range = frame->full_range,
  };
  g_autofree guint8 *packed = NULL;
  gsize bytes[3];
  guint n_planes;
  gfloat probe;
  const gfloat unit[3] = { 1, 1, 1 };

  /* the CPU conversion validates the layout (sizes, strides, planes) with its messages */
  if (!umgclip_frame_to_tensor (frame, 1, 1, unit, unit, &probe, error))
    return FALSE;
  n_planes
      = umg_frame_plane_bytes (frame->format, frame->width, frame->height, frame->strides, bytes);
  for (guint i = 0; i < n_planes; i++)
    {
      spec.frame_strides[i] = frame->strides[i];
      spec.frame_offsets[i] = spec.frame_bytes;
      spec.frame_bytes += (bytes[i] + 3) / 4 * 4;
    }
  if (spec.frame_bytes > G_MAXINT32)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "frame of %" G_GSIZE_FORMAT " bytes is too large", spec.frame_bytes);
      return FALSE;
    }
  packed = g_malloc0 ((spec.frame_bytes + 3) / 4 * 4);
  for (guint i = 0; i < n_planes; i++)
    memcpy (packed + spec.frame_offsets[i], frame->planes[i], bytes[i]);
  return encode_vision (ctx, &spec, packed, request, error);
}

/* ---- zero-shot scoring ---- */

void
umgclip_l2_normalize (gfloat *v, gsize n)
{
  gdouble sum = 0;
  for (gsize i = 0; i < n; i++)
    sum += (gdouble) v[i] * v[i];
  sum = MAX (sqrt (sum), 1e-12);
  for (gsize i = 0; i < n; i++)
    v[i] /= sum;
}

gboolean
umgclip_encode_labels (UmgClipContext *ctx, const gchar *const *labels, guint n_labels,
                       const gchar *const *templates, guint n_templates, gfloat *out,
                       GError **error)
{
  const gint embed = ctx->model->embed_dim;
  const gchar *const plain[] = { "{}" };
  guint n_texts;
  g_autoptr (GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  g_autofree gfloat *encoded = NULL;

  if (templates == NULL || n_templates == 0)
    {
      templates = plain;
      n_templates = 1;
    }
  for (guint l = 0; l < n_labels; l++)
    for (guint t = 0; t < n_templates; t++)
      {
        g_auto (GStrv) parts = g_strsplit (templates[t], "{}", 2);
        g_ptr_array_add (texts, parts[1] != NULL
                                    ? g_strconcat (parts[0], labels[l], parts[1], NULL)
                                    : g_strdup_printf ("%s %s", templates[t], labels[l]));
      }
  n_texts = texts->len;
  encoded = g_new (gfloat, (gsize) n_texts * embed);
  if (!umgclip_encode_text (ctx, (const gchar *const *) texts->pdata, n_texts, encoded, error))
    return FALSE;
  for (guint l = 0; l < n_labels; l++)
    {
      gfloat *mean = out + (gsize) l * embed;
      memset (mean, 0, embed * sizeof (gfloat));
      for (guint t = 0; t < n_templates; t++)
        {
          gfloat *one = encoded + ((gsize) l * n_templates + t) * embed;
          umgclip_l2_normalize (one, embed);
          for (gint i = 0; i < embed; i++)
            mean[i] += one[i] / n_templates;
        }
      umgclip_l2_normalize (mean, embed);
    }
  return TRUE;
}

void
umgclip_score (UmgClipContext *ctx, const gfloat *image_embedding, const gfloat *label_embeddings,
               guint n_labels, gfloat *scores)
{
  umg_label_logits (image_embedding, ctx->model->embed_dim, label_embeddings, n_labels,
                    ctx->model->logit_scale, scores);
  umg_softmax (scores, n_labels);
}
