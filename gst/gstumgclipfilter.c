/* GstUmgClipFilter: the plumbing every umgclip analysis element shares, so that each element
 * file only says what it does with a frame's features (see gstumgclipfilter.h). */
#include "gstumgclipfilter.h"
#include "umgclipmeta.h"

#include <math.h>
#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_umgclip_filter_debug);
#define GST_CAT_DEFAULT gst_umgclip_filter_debug

#define DEFAULT_DEVICE "auto"
#define DEFAULT_INFERENCE_INTERVAL 1
#define DEFAULT_PROMPT_TEMPLATE "a photo of a {}."
#define DEFAULT_THRESHOLD 0.5
#define DEFAULT_DENSE_MODE UMGCLIP_DENSE_NACLIP
#define DEFAULT_INPUT_SIZE 0

enum
{
  PROP_0,
  PROP_MODEL,
  PROP_DEVICE,
  PROP_INFERENCE_INTERVAL,
  PROP_LABELS,
  PROP_LABELS_FILE,
  PROP_PROMPT_TEMPLATE,
  PROP_THRESHOLD,
  PROP_DENSE_MODE,
  PROP_INPUT_SIZE,
  PROP_QOS,
  PROP_VULKAN_DEVICE,
  PROP_VULKAN_DEVICE_INDEX,
};

/* ---- process-wide model cache: one loaded model per (directory, device) ---- */

typedef struct
{
  gchar *key;
  gint refcount;
  UmgClipContext *context;
} SharedModel;

static GMutex model_cache_lock;
static GHashTable *model_cache; /* key -> SharedModel */

static SharedModel *
shared_model_acquire (const gchar *model_dir, UmgClipDeviceKind device, gint device_index,
                      GError **error)
{
  g_autofree gchar *canonical = g_canonicalize_filename (model_dir, NULL);
  g_autofree gchar *key = g_strdup_printf ("%d:%d:%s", device, device_index, canonical);
  SharedModel *shared;

  /* Loading happens under the lock so that two elements starting together load once. */
  g_mutex_lock (&model_cache_lock);
  if (model_cache == NULL)
    model_cache = g_hash_table_new (g_str_hash, g_str_equal);
  shared = g_hash_table_lookup (model_cache, key);
  if (shared != NULL)
    shared->refcount++;
  else
    {
      UmgClipContext *context = umgclip_context_new (model_dir, device, device_index, error);
      if (context != NULL)
        {
          shared = g_new0 (SharedModel, 1);
          shared->key = g_steal_pointer (&key);
          shared->refcount = 1;
          shared->context = context;
          g_hash_table_insert (model_cache, shared->key, shared);
        }
    }
  g_mutex_unlock (&model_cache_lock);
  return shared;
}

static void
shared_model_release (SharedModel *shared)
{
  g_mutex_lock (&model_cache_lock);
  if (--shared->refcount == 0)
    {
      g_hash_table_remove (model_cache, shared->key);
      umgclip_context_free (shared->context);
      g_free (shared->key);
      g_free (shared);
    }
  g_mutex_unlock (&model_cache_lock);
}

/* ---- labels ---- */

GstUmgClipLabels *
gst_umgclip_labels_ref (GstUmgClipLabels *labels)
{
  g_atomic_int_inc (&labels->refcount);
  return labels;
}

void
gst_umgclip_labels_unref (GstUmgClipLabels *labels)
{
  if (labels != NULL && g_atomic_int_dec_and_test (&labels->refcount))
    {
      g_strfreev (labels->labels);
      g_free (labels->embeddings);
      g_free (labels);
    }
}

/* Splits text at separator, strips each item and drops empty ones. */
static GStrv
split_list (const gchar *text, const gchar *separator)
{
  g_auto (GStrv) parts = g_strsplit (text != NULL ? text : "", separator, -1);
  GPtrArray *items = g_ptr_array_new ();
  for (guint i = 0; parts[i] != NULL; i++)
    {
      gchar *item = g_strstrip (parts[i]);
      if (*item != '\0')
        g_ptr_array_add (items, g_strdup (item));
    }
  g_ptr_array_add (items, NULL);
  return (GStrv) g_ptr_array_free (items, FALSE);
}

/* ---- the element ---- */

typedef struct
{
  /* Properties, under the object lock. */
  gchar *model_dir;
  gchar *device;
  guint inference_interval;
  gchar *labels_text;
  gchar *labels_file;
  gchar *prompt_template;
  gdouble threshold;
  UmgClipDenseMode dense_mode;
  guint input_size;
  gboolean qos;
  gboolean labels_changed;    /* text embeddings must be recomputed */
  GstClockTime earliest_time; /* from QoS events: frames before it are late */

  /* Set in start(), read by the streaming thread. */
  SharedModel *model;
  gchar *model_id;
  gint input_width, input_height;
  GStrv file_labels;
  GstUmgClipVulkan *vulkan; /* device shared through GstContext, Vulkan frames */
  gint vulkan_device_index; /* the runtime's Vulkan device, -1: CPU or chosen by the runtime */

  /* Serialises label encoding; labels is replaced, never changed in place. */
  GMutex labels_lock;
  GstUmgClipLabels *labels;

  /* Streaming state. */
  guint frames_until_inference;
  GstBuffer *last_result; /* metas carried to skipped frames */
  gfloat *embedding, *dense;
  GstClockTime longest_inference; /* reported in the latency query when live */
  GstClockTime reported_latency;
} GstUmgClipFilterPrivate;

G_DEFINE_ABSTRACT_TYPE_WITH_CODE (GstUmgClipFilter, gst_umgclip_filter, GST_TYPE_VIDEO_FILTER,
                                  G_ADD_PRIVATE (GstUmgClipFilter)
                                      GST_DEBUG_CATEGORY_INIT (gst_umgclip_filter_debug,
                                                               "umgclipfilter", 0,
                                                               "umgclip analysis elements"))

static GstUmgClipFilterPrivate *
get_priv (GstUmgClipFilter *filter)
{
  return gst_umgclip_filter_get_instance_private (filter);
}

GType
gst_umgclip_dense_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { UMGCLIP_DENSE_NACLIP,
      "NACLIP: key-key attention with a Gaussian neighbourhood prior (sharpest maps)", "naclip" },
    { UMGCLIP_DENSE_CLEARCLIP, "ClearCLIP: query-query attention", "clearclip" },
    { UMGCLIP_DENSE_SCLIP, "SCLIP: query-query plus key-key attention", "sclip" },
    { UMGCLIP_DENSE_MASKCLIP, "MaskCLIP: each patch keeps its own value (no attention)",
      "maskclip" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type))
    {
      GType registered = g_enum_register_static ("GstUmgClipDenseMode", values);
      g_once_init_leave (&type, registered);
    }
  return type;
}

static void
gst_umgclip_filter_set_property (GObject *object, guint prop_id, const GValue *value,
                                 GParamSpec *pspec)
{
  GstUmgClipFilter *filter = GST_UMGCLIP_FILTER (object);
  GstUmgClipFilterPrivate *priv = get_priv (filter);

  GST_OBJECT_LOCK (filter);
  switch (prop_id)
    {
    case PROP_MODEL:
      g_free (priv->model_dir);
      priv->model_dir = g_value_dup_string (value);
      break;
    case PROP_DEVICE:
      g_free (priv->device);
      priv->device = g_value_dup_string (value);
      break;
    case PROP_INFERENCE_INTERVAL:
      priv->inference_interval = g_value_get_uint (value);
      break;
    case PROP_LABELS:
      g_free (priv->labels_text);
      priv->labels_text = g_value_dup_string (value);
      priv->labels_changed = TRUE;
      break;
    case PROP_LABELS_FILE:
      g_free (priv->labels_file);
      priv->labels_file = g_value_dup_string (value);
      break;
    case PROP_PROMPT_TEMPLATE:
      g_free (priv->prompt_template);
      priv->prompt_template = g_value_dup_string (value);
      priv->labels_changed = TRUE;
      break;
    case PROP_THRESHOLD:
      priv->threshold = g_value_get_double (value);
      break;
    case PROP_DENSE_MODE:
      priv->dense_mode = g_value_get_enum (value);
      break;
    case PROP_INPUT_SIZE:
      priv->input_size = g_value_get_uint (value);
      break;
    case PROP_QOS:
      priv->qos = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
    }
  GST_OBJECT_UNLOCK (filter);
}

static void
gst_umgclip_filter_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstUmgClipFilter *filter = GST_UMGCLIP_FILTER (object);
  GstUmgClipFilterPrivate *priv = get_priv (filter);

  GST_OBJECT_LOCK (filter);
  switch (prop_id)
    {
    case PROP_MODEL:
      g_value_set_string (value, priv->model_dir);
      break;
    case PROP_DEVICE:
      g_value_set_string (value, priv->device);
      break;
    case PROP_INFERENCE_INTERVAL:
      g_value_set_uint (value, priv->inference_interval);
      break;
    case PROP_LABELS:
      g_value_set_string (value, priv->labels_text);
      break;
    case PROP_LABELS_FILE:
      g_value_set_string (value, priv->labels_file);
      break;
    case PROP_PROMPT_TEMPLATE:
      g_value_set_string (value, priv->prompt_template);
      break;
    case PROP_THRESHOLD:
      g_value_set_double (value, priv->threshold);
      break;
    case PROP_DENSE_MODE:
      g_value_set_enum (value, priv->dense_mode);
      break;
    case PROP_INPUT_SIZE:
      g_value_set_uint (value, priv->input_size);
      break;
    case PROP_QOS:
      g_value_set_boolean (value, priv->qos);
      break;
    case PROP_VULKAN_DEVICE:
      g_value_take_object (value, gst_umgclip_vulkan_get_device (priv->vulkan));
      break;
    case PROP_VULKAN_DEVICE_INDEX:
      g_value_set_int (value, priv->vulkan_device_index);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
    }
  GST_OBJECT_UNLOCK (filter);
}

/* ---- accessors for subclasses ---- */

UmgClipContext *
gst_umgclip_filter_get_context (GstUmgClipFilter *filter)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  return priv->model != NULL ? priv->model->context : NULL;
}

const gchar *
gst_umgclip_filter_get_model_id (GstUmgClipFilter *filter)
{
  return get_priv (filter)->model_id;
}

gdouble
gst_umgclip_filter_get_threshold (GstUmgClipFilter *filter)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  gdouble threshold;
  GST_OBJECT_LOCK (filter);
  threshold = priv->threshold;
  GST_OBJECT_UNLOCK (filter);
  return threshold;
}

GstUmgClipLabels *
gst_umgclip_filter_get_labels (GstUmgClipFilter *filter, GError **error)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  UmgClipContext *context = gst_umgclip_filter_get_context (filter);
  GstUmgClipLabels *result = NULL;
  g_auto (GStrv) labels = NULL;
  g_auto (GStrv) templates = NULL;
  gboolean changed;

  g_return_val_if_fail (context != NULL, NULL);

  g_mutex_lock (&priv->labels_lock);
  GST_OBJECT_LOCK (filter);
  changed = priv->labels_changed || priv->labels == NULL;
  if (changed)
    {
      /* The labels property, when set, wins over labels-file. */
      labels = split_list (priv->labels_text, ",");
      if (labels[0] == NULL && priv->file_labels != NULL)
        {
          g_strfreev (labels);
          labels = g_strdupv (priv->file_labels);
        }
      templates = split_list (priv->prompt_template, ";");
      priv->labels_changed = FALSE;
    }
  GST_OBJECT_UNLOCK (filter);

  if (changed)
    {
      const UmgClipInfo *info = umgclip_context_get_info (context);
      GstUmgClipLabels *fresh = g_new0 (GstUmgClipLabels, 1);
      fresh->refcount = 1;
      fresh->n_labels = g_strv_length (labels);
      fresh->dim = info->embed_dim;
      fresh->embeddings = g_new0 (gfloat, MAX (fresh->n_labels, 1) * (gsize) fresh->dim);
      fresh->labels = g_steal_pointer (&labels);
      GST_DEBUG_OBJECT (filter, "encoding %u labels with %u templates", fresh->n_labels,
                        g_strv_length (templates));
      if (fresh->n_labels > 0
          && !umgclip_encode_labels (context, (const gchar *const *) fresh->labels, fresh->n_labels,
                                     (const gchar *const *) templates, g_strv_length (templates),
                                     fresh->embeddings, error))
        {
          gst_umgclip_labels_unref (fresh);
          /* Try again on the next call rather than keep a half-made list. */
          GST_OBJECT_LOCK (filter);
          priv->labels_changed = TRUE;
          GST_OBJECT_UNLOCK (filter);
          g_mutex_unlock (&priv->labels_lock);
          return NULL;
        }
      gst_umgclip_labels_unref (priv->labels);
      priv->labels = fresh;
    }
  result = gst_umgclip_labels_ref (priv->labels);
  g_mutex_unlock (&priv->labels_lock);
  return result;
}

/* ---- frame conversion ---- */

/* The runtime's view of a mapped frame: format, planes, strides and, for YUV, the colour
 * matrix and range from the caps' colorimetry. */
static gboolean
frame_layout (const GstVideoFrame *frame, UmgClipFrame *out, GError **error)
{
  const GstVideoColorimetry *colorimetry = &frame->info.colorimetry;
  gdouble kr, kb;

  memset (out, 0, sizeof *out);
  if (!umgclip_pixel_format_parse (gst_video_format_to_string (GST_VIDEO_FRAME_FORMAT (frame)),
                                   &out->format, error))
    return FALSE;
  out->width = GST_VIDEO_FRAME_WIDTH (frame);
  out->height = GST_VIDEO_FRAME_HEIGHT (frame);
  for (guint i = 0; i < GST_VIDEO_FRAME_N_PLANES (frame) && i < 3; i++)
    {
      out->planes[i] = GST_VIDEO_FRAME_PLANE_DATA (frame, i);
      out->strides[i] = GST_VIDEO_FRAME_PLANE_STRIDE (frame, i);
    }
  /* unknown matrices fall back to BT.601 in the runtime */
  if (gst_video_color_matrix_get_Kr_Kb (colorimetry->matrix, &kr, &kb))
    {
      out->kr = kr;
      out->kb = kb;
    }
  out->full_range = colorimetry->range == GST_VIDEO_COLOR_RANGE_0_255;
  return TRUE;
}

gboolean
gst_umgclip_frame_to_tensor (UmgClipContext *context, const GstVideoFrame *frame, gint width,
                             gint height, gfloat *out, GError **error)
{
  UmgClipFrame layout;
  gfloat mean[3], std[3];

  if (!frame_layout (frame, &layout, error))
    return FALSE;
  umgclip_get_pixel_stats (context, mean, std);
  return umgclip_frame_to_tensor (&layout, width, height, mean, std, out, error);
}

/* ---- features ---- */

static gboolean
upstream_meta_matches (GstUmgClipFilter *filter, const GstUmgClipEmbeddingMeta *meta,
                       gboolean want_dense, UmgClipDenseMode dense_mode, guint dim)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  if (meta->dim != dim || g_strcmp0 (meta->model, priv->model_id) != 0)
    return FALSE;
  if (!want_dense)
    return TRUE;
  return meta->dense != NULL
         && g_strcmp0 (meta->dense_mode, umgclip_dense_mode_name (dense_mode)) == 0
         && meta->input_width == (guint) priv->input_width
         && meta->input_height == (guint) priv->input_height;
}

gboolean
gst_umgclip_filter_compute_features (GstUmgClipFilter *filter, GstVideoFrame *frame,
                                     gboolean want_dense, GstUmgClipFeatures *features,
                                     GError **error)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  UmgClipContext *context = gst_umgclip_filter_get_context (filter);
  const UmgClipInfo *info;
  UmgClipDenseMode dense_mode;
  UmgClipImageRequest request = { 0 };
  UmgClipFrame layout;
  gpointer state = NULL;
  GstMeta *meta;
  guint grid_width, grid_height;

  g_return_val_if_fail (context != NULL, FALSE);
  info = umgclip_context_get_info (context);
  GST_OBJECT_LOCK (filter);
  dense_mode = priv->dense_mode;
  GST_OBJECT_UNLOCK (filter);
  grid_width = priv->input_width / info->patch_size;
  grid_height = priv->input_height / info->patch_size;

  memset (features, 0, sizeof (*features));
  features->dim = info->embed_dim;
  features->dense_mode = dense_mode;
  features->input_width = priv->input_width;
  features->input_height = priv->input_height;

  while ((meta = gst_buffer_iterate_meta_filtered (frame->buffer, &state,
                                                   GST_UMGCLIP_EMBEDDING_META_API_TYPE)))
    {
      GstUmgClipEmbeddingMeta *upstream = (GstUmgClipEmbeddingMeta *) meta;
      if (!upstream_meta_matches (filter, upstream, want_dense, dense_mode, features->dim))
        continue;
      GST_LOG_OBJECT (filter, "reusing the features of an upstream embedding meta");
      features->embedding = upstream->embedding;
      if (want_dense)
        {
          features->dense = upstream->dense;
          features->grid_width = upstream->grid_width;
          features->grid_height = upstream->grid_height;
        }
      return TRUE;
    }

  request.dense_mode = dense_mode;
  request.embedding = priv->embedding;
  request.dense = want_dense ? priv->dense : NULL;
  /* the frame goes to the backend as it is mapped: conversion, resizing and normalisation run
   * there (a compute shader on Vulkan) */
  if (!frame_layout (frame, &layout, error)
      || !umgclip_encode_frame (context, &layout, priv->input_width, priv->input_height, &request,
                                error))
    return FALSE;
  umgclip_l2_normalize (priv->embedding, features->dim);
  features->embedding = priv->embedding;
  features->computed = TRUE;
  if (want_dense)
    {
      /* as the runtime returns it, not normalised: RoI-Align and mask pooling average the
       * raw cells, as umgclip encode-regions and training do */
      features->dense = priv->dense;
      features->grid_width = grid_width;
      features->grid_height = grid_height;
    }
  return TRUE;
}

/* ---- lifecycle ---- */

static gboolean
read_labels_file (const gchar *path, GStrv *labels, GError **error)
{
  g_autofree gchar *contents = NULL;
  if (!g_file_get_contents (path, &contents, NULL, error))
    return FALSE;
  *labels = split_list (contents, "\n");
  return TRUE;
}

static void
release_resources (GstUmgClipFilter *filter)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  g_mutex_lock (&priv->labels_lock);
  g_clear_pointer (&priv->labels, gst_umgclip_labels_unref);
  g_mutex_unlock (&priv->labels_lock);
  gst_clear_buffer (&priv->last_result);
  g_clear_pointer (&priv->embedding, g_free);
  g_clear_pointer (&priv->dense, g_free);
  g_clear_pointer (&priv->file_labels, g_strfreev);
  g_clear_pointer (&priv->model_id, g_free);
  g_clear_pointer (&priv->model, shared_model_release);
  gst_umgclip_vulkan_reset (priv->vulkan);
  GST_OBJECT_LOCK (filter);
  priv->vulkan_device_index = -1;
  GST_OBJECT_UNLOCK (filter);
}

static gboolean
gst_umgclip_filter_start (GstBaseTransform *trans)
{
  GstUmgClipFilter *filter = GST_UMGCLIP_FILTER (trans);
  GstUmgClipFilterClass *klass = GST_UMGCLIP_FILTER_GET_CLASS (filter);
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  g_autoptr (GError) error = NULL;
  g_autofree gchar *model_dir = NULL, *device = NULL, *labels_file = NULL;
  g_autoptr (GstUmgClipLabels) labels = NULL;
  UmgClipDeviceKind device_kind;
  gint device_index, size, patch;
  guint input_size;
  const UmgClipInfo *info;

  GST_OBJECT_LOCK (filter);
  model_dir = g_strdup (priv->model_dir);
  device = g_strdup (priv->device);
  labels_file = g_strdup (priv->labels_file);
  input_size = priv->input_size;
  priv->labels_changed = TRUE;
  priv->earliest_time = GST_CLOCK_TIME_NONE;
  GST_OBJECT_UNLOCK (filter);

  if (!umgclip_parse_device (device, &device_kind, &device_index, &error))
    {
      GST_ELEMENT_ERROR (filter, RESOURCE, SETTINGS, ("Unknown device: %s", error->message),
                         ("device=%s", device));
      return FALSE;
    }
  /* Frames from a Vulkan element upstream are best analysed on its device. */
  if (device_kind != UMGCLIP_DEVICE_CPU && device_index < 0)
    {
      gint shared_index = gst_umgclip_vulkan_find_device (priv->vulkan);
      if (shared_index >= 0)
        {
          device_kind = UMGCLIP_DEVICE_VULKAN;
          device_index = shared_index;
        }
    }
  if (model_dir == NULL || *model_dir == '\0')
    {
      GST_ELEMENT_ERROR (filter, RESOURCE, NOT_FOUND, ("No model directory given"),
                         ("set the model property or UMGCLIP_MODEL"));
      return FALSE;
    }
  priv->model = shared_model_acquire (model_dir, device_kind, device_index, &error);
  if (priv->model == NULL)
    {
      GST_ELEMENT_ERROR (filter, RESOURCE, OPEN_READ,
                         ("Could not load model '%s': %s", model_dir, error->message),
                         ("model=%s device=%s", model_dir, device));
      return FALSE;
    }
  info = umgclip_context_get_info (priv->model->context);
  GST_OBJECT_LOCK (filter);
  priv->vulkan_device_index = device_kind == UMGCLIP_DEVICE_VULKAN ? device_index : -1;
  GST_OBJECT_UNLOCK (filter);
  priv->model_id = g_path_get_basename (model_dir);

  /* The network input is square and a whole number of patches. */
  patch = info->patch_size;
  size = input_size > 0 ? (gint) input_size : info->image_size;
  size = MAX (patch, (size + patch / 2) / patch * patch);
  priv->input_width = priv->input_height = size;
  priv->embedding = g_new (gfloat, info->embed_dim);
  priv->dense = g_new (gfloat, (gsize) (size / patch) * (size / patch) * info->embed_dim);
  GST_INFO_OBJECT (filter, "model %s on %s, network input %dx%d", model_dir, info->backend, size,
                   size);

  if (labels_file != NULL && *labels_file != '\0'
      && !read_labels_file (labels_file, &priv->file_labels, &error))
    {
      GST_ELEMENT_ERROR (filter, RESOURCE, NOT_FOUND,
                         ("Could not read labels-file '%s': %s", labels_file, error->message),
                         (NULL));
      release_resources (filter);
      return FALSE;
    }
  /* Encode now so that a bad label list fails at start rather than on the first frame. */
  labels = gst_umgclip_filter_get_labels (filter, &error);
  if (labels == NULL)
    {
      GST_ELEMENT_ERROR (filter, LIBRARY, FAILED, ("Could not encode labels: %s", error->message),
                         (NULL));
      release_resources (filter);
      return FALSE;
    }
  if (klass->needs_labels && labels->n_labels == 0)
    {
      GST_ELEMENT_ERROR (filter, RESOURCE, SETTINGS,
                         ("No labels: set the labels property (comma-separated) or labels-file"),
                         (NULL));
      release_resources (filter);
      return FALSE;
    }

  priv->frames_until_inference = 0;
  priv->longest_inference = 0;
  priv->reported_latency = 0;
  return TRUE;
}

static gboolean
gst_umgclip_filter_stop (GstBaseTransform *trans)
{
  release_resources (GST_UMGCLIP_FILTER (trans));
  return TRUE;
}

/* A new frame size: results of the old size must not be carried over. */
static gboolean
gst_umgclip_filter_set_info (GstVideoFilter *video_filter, GstCaps *incaps, GstVideoInfo *in_info,
                             GstCaps *outcaps, GstVideoInfo *out_info)
{
  GstUmgClipFilterPrivate *priv = get_priv (GST_UMGCLIP_FILTER (video_filter));
  gst_clear_buffer (&priv->last_result);
  priv->frames_until_inference = 0;
  return TRUE;
}

/* ---- per frame ---- */

static gboolean
frame_is_late (GstUmgClipFilter *filter, GstBuffer *buffer)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  GstBaseTransform *trans = GST_BASE_TRANSFORM (filter);
  GstClockTime running_time, earliest;
  gboolean qos;

  GST_OBJECT_LOCK (filter);
  qos = priv->qos;
  earliest = priv->earliest_time;
  GST_OBJECT_UNLOCK (filter);
  if (!qos || !GST_CLOCK_TIME_IS_VALID (earliest) || !GST_BUFFER_PTS_IS_VALID (buffer))
    return FALSE;
  running_time
      = gst_segment_to_running_time (&trans->segment, GST_FORMAT_TIME, GST_BUFFER_PTS (buffer));
  return GST_CLOCK_TIME_IS_VALID (running_time) && running_time < earliest;
}

static void
post_inference_message (GstUmgClipFilter *filter, GstBuffer *buffer, GstClockTime elapsed,
                        gboolean backbone)
{
  GstStructure *structure = gst_structure_new (
      "umgclip-inference", "inference-time", G_TYPE_UINT64, elapsed, "pts", G_TYPE_UINT64,
      GST_BUFFER_PTS (buffer), "backbone", G_TYPE_BOOLEAN, backbone, NULL);
  gst_element_post_message (GST_ELEMENT (filter),
                            gst_message_new_element (GST_OBJECT (filter), structure));
}

/* The latency we report grows with the longest inference seen; tell the pipeline when it has
 * grown noticeably so that live sinks re-query it. */
static void
update_latency (GstUmgClipFilter *filter, GstClockTime elapsed)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  gboolean grew;
  GST_OBJECT_LOCK (filter);
  if (elapsed > priv->longest_inference)
    priv->longest_inference = elapsed;
  grew = priv->longest_inference > priv->reported_latency + priv->reported_latency / 4;
  GST_OBJECT_UNLOCK (filter);
  if (grew)
    gst_element_post_message (GST_ELEMENT (filter), gst_message_new_latency (GST_OBJECT (filter)));
}

/* Maps the frame read-only: the default GstVideoFilter path maps it for writing, which copies
 * memory shared with other buffers although these elements never touch pixels. */
static GstFlowReturn
gst_umgclip_filter_transform_ip (GstBaseTransform *trans, GstBuffer *buffer)
{
  GstUmgClipFilter *filter = GST_UMGCLIP_FILTER (trans);
  GstUmgClipFilterClass *klass = GST_UMGCLIP_FILTER_GET_CLASS (filter);
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  GstVideoFilter *video_filter = GST_VIDEO_FILTER (trans);
  g_autoptr (GError) error = NULL;
  g_autoptr (GstBuffer) result = NULL;
  GstUmgClipFeatures features;
  GstVideoFrame frame;
  gint64 started;
  GstClockTime elapsed;
  guint interval;
  gboolean ok;

  if (!video_filter->negotiated)
    {
      GST_ELEMENT_ERROR (filter, CORE, NEGOTIATION, (NULL), ("unknown format"));
      return GST_FLOW_NOT_NEGOTIATED;
    }

  if (priv->last_result != NULL
      && (priv->frames_until_inference > 0 || frame_is_late (filter, buffer)))
    {
      if (priv->frames_until_inference > 0)
        priv->frames_until_inference--;
      gst_buffer_copy_into (buffer, priv->last_result, GST_BUFFER_COPY_META, 0, -1);
      return GST_FLOW_OK;
    }

  if (!gst_umgclip_vulkan_frame_map (priv->vulkan, &frame, &video_filter->in_info, buffer, &error))
    {
      GST_ELEMENT_ERROR (filter, STREAM, FAILED,
                         ("Could not read the video frame: %s", error->message), (NULL));
      return GST_FLOW_ERROR;
    }
  started = g_get_monotonic_time ();
  result = gst_buffer_new ();
  ok = gst_umgclip_filter_compute_features (
           filter, &frame, klass->wants_dense != NULL && klass->wants_dense (filter), &features,
           &error)
       && klass->infer (filter, &frame, &features, result, &error);
  gst_umgclip_vulkan_frame_unmap (priv->vulkan, &frame);
  if (!ok)
    {
      GST_ELEMENT_ERROR (filter, LIBRARY, FAILED, ("Inference failed: %s", error->message), (NULL));
      return GST_FLOW_ERROR;
    }
  elapsed = (g_get_monotonic_time () - started) * GST_USECOND;

  gst_buffer_copy_into (buffer, result, GST_BUFFER_COPY_META, 0, -1);
  gst_buffer_replace (&priv->last_result, result);
  GST_OBJECT_LOCK (filter);
  interval = MAX (priv->inference_interval, 1);
  GST_OBJECT_UNLOCK (filter);
  priv->frames_until_inference = interval - 1;

  post_inference_message (filter, buffer, elapsed, features.computed);
  update_latency (filter, elapsed);
  return GST_FLOW_OK;
}

static gboolean
gst_umgclip_filter_src_event (GstBaseTransform *trans, GstEvent *event)
{
  GstUmgClipFilterPrivate *priv = get_priv (GST_UMGCLIP_FILTER (trans));
  if (GST_EVENT_TYPE (event) == GST_EVENT_QOS)
    {
      GstQOSType type;
      gdouble proportion;
      GstClockTimeDiff diff;
      GstClockTime timestamp;
      gst_event_parse_qos (event, &type, &proportion, &diff, &timestamp);
      GST_OBJECT_LOCK (trans);
      /* Like GstBaseTransform: when late, expect to stay late for about as long again. */
      if (diff > 0)
        priv->earliest_time = timestamp + 2 * diff;
      else
        priv->earliest_time = timestamp + diff;
      GST_OBJECT_UNLOCK (trans);
    }
  return GST_BASE_TRANSFORM_CLASS (gst_umgclip_filter_parent_class)->src_event (trans, event);
}

/* When live, frames are held for one inference: add the longest inference seen so far (0
 * before the first frame; a latency message is posted when it grows) to min and max latency. */
static gboolean
gst_umgclip_filter_query (GstBaseTransform *trans, GstPadDirection direction, GstQuery *query)
{
  GstUmgClipFilterPrivate *priv = get_priv (GST_UMGCLIP_FILTER (trans));
  gboolean ok;

  if (gst_umgclip_vulkan_handle_query (priv->vulkan, query))
    return TRUE;
  ok = GST_BASE_TRANSFORM_CLASS (gst_umgclip_filter_parent_class)->query (trans, direction, query);

  if (ok && direction == GST_PAD_SRC && GST_QUERY_TYPE (query) == GST_QUERY_LATENCY)
    {
      gboolean live;
      GstClockTime min, max, ours;
      gst_query_parse_latency (query, &live, &min, &max);
      GST_OBJECT_LOCK (trans);
      ours = priv->reported_latency = priv->longest_inference;
      GST_OBJECT_UNLOCK (trans);
      if (live)
        {
          min += ours;
          if (GST_CLOCK_TIME_IS_VALID (max))
            max += ours;
          gst_query_set_latency (query, live, min, max);
        }
    }
  return ok;
}

static void
gst_umgclip_filter_set_context (GstElement *element, GstContext *context)
{
  gst_umgclip_vulkan_set_context (get_priv (GST_UMGCLIP_FILTER (element))->vulkan, context);
  GST_ELEMENT_CLASS (gst_umgclip_filter_parent_class)->set_context (element, context);
}

static void
gst_umgclip_filter_finalize (GObject *object)
{
  GstUmgClipFilter *filter = GST_UMGCLIP_FILTER (object);
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  release_resources (filter);
  gst_umgclip_vulkan_free (priv->vulkan);
  g_free (priv->model_dir);
  g_free (priv->device);
  g_free (priv->labels_text);
  g_free (priv->labels_file);
  g_free (priv->prompt_template);
  g_mutex_clear (&priv->labels_lock);
  G_OBJECT_CLASS (gst_umgclip_filter_parent_class)->finalize (object);
}

static void
gst_umgclip_filter_init (GstUmgClipFilter *filter)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  priv->model_dir = g_strdup (umgclip_default_model ());
  priv->device = g_strdup (DEFAULT_DEVICE);
  priv->inference_interval = DEFAULT_INFERENCE_INTERVAL;
  priv->prompt_template = g_strdup (DEFAULT_PROMPT_TEMPLATE);
  priv->threshold = DEFAULT_THRESHOLD;
  priv->dense_mode = DEFAULT_DENSE_MODE;
  priv->input_size = DEFAULT_INPUT_SIZE;
  priv->earliest_time = GST_CLOCK_TIME_NONE;
  g_mutex_init (&priv->labels_lock);
  priv->vulkan = gst_umgclip_vulkan_new (GST_ELEMENT (filter));
  priv->vulkan_device_index = -1;
  /* Metadata only: buffers are made writable for metas, pixels are never written. */
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (filter), TRUE);
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (filter), FALSE);
}

static void
gst_umgclip_filter_class_init (GstUmgClipFilterClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *transform_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstVideoFilterClass *video_filter_class = GST_VIDEO_FILTER_CLASS (klass);
  const GParamFlags flags = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;

  gobject_class->set_property = gst_umgclip_filter_set_property;
  gobject_class->get_property = gst_umgclip_filter_get_property;
  gobject_class->finalize = gst_umgclip_filter_finalize;

  g_object_class_install_property (
      gobject_class, PROP_MODEL,
      g_param_spec_string ("model", "Model",
                           "Model directory (HuggingFace or OpenCLIP CLIP layout). Default: "
                           "$UMGCLIP_MODEL, else the model built in",
                           umgclip_default_model (), flags | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      gobject_class, PROP_DEVICE,
      g_param_spec_string ("device", "Device",
                           "Where the model runs: auto (a GPU through Vulkan, else the CPU), cpu, "
                           "vulkan, or vulkan:N for the N-th Vulkan device",
                           DEFAULT_DEVICE, flags | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      gobject_class, PROP_INFERENCE_INTERVAL,
      g_param_spec_uint ("inference-interval", "Inference interval",
                         "Run the model on every Nth frame; frames in between carry the last "
                         "result",
                         1, G_MAXUINT, DEFAULT_INFERENCE_INTERVAL,
                         flags | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (
      gobject_class, PROP_LABELS,
      g_param_spec_string (
          "labels", "Labels",
          "Comma-separated words or phrases to recognise, e.g. \"person,car,tree\"."
          " Can be changed while playing; overrides labels-file",
          NULL, flags | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (
      gobject_class, PROP_LABELS_FILE,
      g_param_spec_string ("labels-file", "Labels file",
                           "Text file with one label per line (used when labels is not set)", NULL,
                           flags | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      gobject_class, PROP_PROMPT_TEMPLATE,
      g_param_spec_string ("prompt-template", "Prompt template",
                           "Sentence a label is put into, {} marking the label; several "
                           "templates separated by ';' are averaged (prompt ensembling)",
                           DEFAULT_PROMPT_TEMPLATE, flags | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (
      gobject_class, PROP_THRESHOLD,
      g_param_spec_double ("threshold", "Threshold",
                           "Minimum score (0..1) for a result to be reported", 0.0, 1.0,
                           DEFAULT_THRESHOLD, flags | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (
      gobject_class, PROP_DENSE_MODE,
      g_param_spec_enum ("dense-mode", "Dense mode",
                         "How per-pixel features are taken from the last layer of CLIP",
                         GST_TYPE_UMGCLIP_DENSE_MODE, DEFAULT_DENSE_MODE,
                         flags | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (
      gobject_class, PROP_INPUT_SIZE,
      g_param_spec_uint ("input-size", "Input size",
                         "Side of the square network input in pixels (rounded to whole patches; "
                         "0 = the model's image size). The whole frame is resized to it without "
                         "cropping, so larger values give finer maps at a higher cost",
                         0, 4096, DEFAULT_INPUT_SIZE, flags | GST_PARAM_MUTABLE_READY));
  /* GstBaseTransform's qos drops late frames; here only inference is skipped. */
  g_object_class_override_property (gobject_class, PROP_QOS, "qos");
  g_object_class_install_property (
      gobject_class, PROP_VULKAN_DEVICE,
      g_param_spec_object (
          "vulkan-device", "Vulkan device",
          "The GstVulkanDevice shared with neighbouring Vulkan elements through GstContext "
          "(theirs, the application's, or one opened for a Vulkan element upstream); looked "
          "for at start unless device is cpu or vulkan:N",
          gst_umgclip_vulkan_device_type (), G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (
      gobject_class, PROP_VULKAN_DEVICE_INDEX,
      g_param_spec_int ("vulkan-device-index", "Vulkan device index",
                        "Index of the Vulkan device the model runs on (that of vulkan-device when "
                        "one was shared and device is auto or vulkan); -1 on the CPU or when the "
                        "runtime chose the device itself",
                        -1, G_MAXINT, -1, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  gst_element_class_add_pad_template (
      element_class, gst_pad_template_new ("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
                                           gst_caps_from_string (GST_UMGCLIP_FILTER_CAPS)));
  gst_element_class_add_pad_template (
      element_class, gst_pad_template_new ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
                                           gst_caps_from_string (GST_UMGCLIP_FILTER_CAPS)));

  element_class->set_context = GST_DEBUG_FUNCPTR (gst_umgclip_filter_set_context);
  transform_class->start = GST_DEBUG_FUNCPTR (gst_umgclip_filter_start);
  transform_class->stop = GST_DEBUG_FUNCPTR (gst_umgclip_filter_stop);
  transform_class->transform_ip = GST_DEBUG_FUNCPTR (gst_umgclip_filter_transform_ip);
  transform_class->transform_ip_on_passthrough = FALSE;
  transform_class->src_event = GST_DEBUG_FUNCPTR (gst_umgclip_filter_src_event);
  transform_class->query = GST_DEBUG_FUNCPTR (gst_umgclip_filter_query);
  video_filter_class->set_info = GST_DEBUG_FUNCPTR (gst_umgclip_filter_set_info);

  gst_type_mark_as_plugin_api (GST_TYPE_UMGCLIP_FILTER, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_UMGCLIP_DENSE_MODE, 0);
}
