/* GstUmgClipFilter: the plumbing every umgclip analysis element shares (see
 * gstumgclipfilter.h), so that each element file only says what it does with a frame's
 * features. Frames reach the model's worker as jobs; the streaming thread only hands frames
 * over, takes results and puts them on frames, in the order and with the waiting that the
 * schedule asks for. */
#include "gstumgclipfilter.h"

#include "gstumgclipmodel.h"
#include "umgclipmeta.h"

#include <glib/gstdio.h>
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
#define DEFAULT_SCHEDULE GST_UMGCLIP_SCHEDULE_AUTO
#define DEFAULT_NIREQ 4
#define DEFAULT_MAX_ERRORS 5

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
  PROP_SCHEDULE,
  PROP_NIREQ,
  PROP_MAX_ERRORS,
  PROP_STATS,
  PROP_VULKAN_DEVICE,
  PROP_VULKAN_DEVICE_INDEX,
};

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

/* ---- results and jobs ---- */

/* A result as frames carry it: shared by every frame until the next one. */
typedef struct
{
  gint refcount;
  GstUmgClipResult result;
  GstClockTime source_pts;
} Result;

static Result *
result_ref (Result *result)
{
  g_atomic_int_inc (&result->refcount);
  return result;
}

static void
result_unref (Result *result)
{
  if (result == NULL || !g_atomic_int_dec_and_test (&result->refcount))
    return;
  gst_clear_buffer (&result->result.metas);
  if (result->result.free_data != NULL)
    result->result.free_data (result->result.data);
  g_free (result);
}

/* One frame's inference: the model's job, and what the element keeps with it. */
typedef struct
{
  GstUmgClipJob job;        /* first: the model hands this pointer back to finish() */
  GstUmgClipFilter *filter; /* not a reference: the element waits for its jobs before it stops */
  GstBuffer *buffer;        /* the frame: its metas, and its pixels while the job runs */
  GstVideoInfo info;
  GstBuffer *host; /* the buffer whose memory is mapped (buffer, or a host copy of it) */
  GstVideoFrame mapped;
  gboolean is_mapped;
  UmgClipDeviceFrame *device_frame;
  GstUmgClipFeatures features;
  gfloat *embedding, *dense; /* the pass's outputs */
  Result *result;            /* set by finish () */
  guint64 flushes;           /* the element's flush count when the job was made */
} FrameJob;

/* A frame waiting in schedule=ordered: with its own job, or carrying the result of the job
 * before it (inference-interval, QoS). */
typedef struct
{
  GstBuffer *buffer;
  FrameJob *job;
  gint64 queued_us;
} Pending;

typedef struct
{
  guint64 frames, inferences, skipped_busy, skipped_interval, skipped_qos;
  guint64 batches, batched_frames, errors, recoveries, host_copies;
  guint64 malformed; /* buffers smaller than their caps say, dropped */
  gint64 inference_us;
} Stats;

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
  GstUmgClipSchedule schedule;
  guint nireq;
  guint max_errors;
  guint labels_generation;    /* bumped by every change of labels or prompt-template */
  gchar *upstream_stream;     /* upstream's URI, else its stream-id (STREAM_START) */
  GstClockTime earliest_time; /* from QoS events: frames before it are late */
  Stats stats;
  GstClockTime reported_latency, latency; /* what the LATENCY query adds; the longest wait */

  /* Set in start(), read by every thread until stop(). */
  GstUmgClipModel *model;
  const UmgClipInfo *info;
  gchar *model_id;
  gint input_width, input_height;
  GStrv file_labels;        /* replaced under the object lock when labels-file changes */
  GstUmgClipVulkan *vulkan; /* device shared through GstContext, Vulkan frames */
  gint vulkan_device_index; /* under the object lock */

  /* The labels snapshot, replaced (never changed in place) by whoever encodes: infer() on the
   * worker, or start(). */
  GMutex labels_lock;
  GstUmgClipLabels *labels;
  guint labels_encoded; /* the generation labels was encoded for */

  /* Streaming thread only. */
  GstUmgClipSchedule mode; /* resolved on the first frame; AUTO until then */
  guint frames_until_inference;
  FrameJob *in_flight;       /* latest: the frame being inferred */
  guint64 flushes;           /* results of jobs made before a flush are dropped */
  gboolean inferring;        /* a frame was handed to inference since start, flush or new caps */
  gboolean warned_malformed; /* a malformed buffer was reported since start */
  gint64 labels_file_checked_us; /* when labels-file was last looked at (monotonic) */
  gchar *labels_file_stamp;      /* what it was then: inode, size and mtime, or "missing" */

  /* Whoever takes results: the streaming thread (sync, latest) or the output thread
   * (ordered). */
  Result *last; /* carried to the frames until the next result */
  guint consecutive_errors;
  gint failed; /* atomic: max-errors reached, an error was posted */

  /* schedule=ordered: the streaming thread queues frames, the output thread pushes each once
   * its result is in. Under pending_lock, signalled on pending_cond: */
  GMutex pending_lock;
  GCond pending_cond;
  GQueue pending;           /* Pending *, oldest first */
  gboolean output_busy;     /* the output thread holds a frame it took from pending */
  gboolean stopping;        /* the output thread is to end */
  GstFlowReturn downstream; /* what the last push returned */
  GThread *output_thread;
  /* Set under pending_lock, read by waits for jobs under the model's lock: set while
   * flushing or stopping, so that nobody waits for a job (gst_umgclip_model_wake). */
  gboolean cancel_waits;
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

GType
gst_umgclip_schedule_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_UMGCLIP_SCHEDULE_AUTO, "latest when the source is live, ordered otherwise", "auto" },
    { GST_UMGCLIP_SCHEDULE_SYNC,
      "Inference on the streaming thread, each frame waiting for its own (for debugging)", "sync" },
    { GST_UMGCLIP_SCHEDULE_ORDERED,
      "Inference on the model's worker; frames wait in order for their own result, at most "
      "nireq at once (files, offline analysis)",
      "ordered" },
    { GST_UMGCLIP_SCHEDULE_LATEST,
      "Inference on the model's worker; frames never wait and carry the newest finished "
      "result, frames arriving while it is busy skip inference (live cameras)",
      "latest" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type))
    {
      GType registered = g_enum_register_static ("GstUmgClipSchedule", values);
      g_once_init_leave (&type, registered);
    }
  return type;
}

/* ---- properties ---- */

static GstStructure *
stats_structure (GstUmgClipFilter *filter)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  GstUmgClipSchedule mode;
  Stats s;
  guint pending;

  g_mutex_lock (&priv->pending_lock);
  pending = g_queue_get_length (&priv->pending);
  g_mutex_unlock (&priv->pending_lock);
  GstUmgClipModelStats model_stats = { 0 };

  GST_OBJECT_LOCK (filter);
  s = priv->stats;
  mode = priv->mode;
  GST_OBJECT_UNLOCK (filter);
  /* the model lives from start to stop; stats are read from any thread */
  g_mutex_lock (&priv->labels_lock);
  if (priv->model != NULL)
    gst_umgclip_model_get_stats (priv->model, &model_stats);
  g_mutex_unlock (&priv->labels_lock);
  return gst_structure_new (
      "umgclip-stats", "schedule", G_TYPE_STRING,
      g_enum_get_value (g_type_class_peek (GST_TYPE_UMGCLIP_SCHEDULE), mode)->value_nick, "frames",
      G_TYPE_UINT64, s.frames, "inferences", G_TYPE_UINT64, s.inferences, "skipped-busy",
      G_TYPE_UINT64, s.skipped_busy, "skipped-interval", G_TYPE_UINT64, s.skipped_interval,
      "skipped-qos", G_TYPE_UINT64, s.skipped_qos, "batches", G_TYPE_UINT64, s.batches,
      "mean-batch", G_TYPE_DOUBLE, s.batches > 0 ? (gdouble) s.batched_frames / s.batches : 0.0,
      "mean-inference-ms", G_TYPE_DOUBLE,
      s.inferences > 0 ? s.inference_us / 1000.0 / s.inferences : 0.0, "errors", G_TYPE_UINT64,
      s.errors, "recoveries", G_TYPE_UINT64, s.recoveries, "host-copies", G_TYPE_UINT64,
      s.host_copies, "malformed", G_TYPE_UINT64, s.malformed, "pending", G_TYPE_UINT, pending,
      "shared-by", G_TYPE_UINT, model_stats.elements, NULL);
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
      priv->labels_generation++;
      break;
    case PROP_LABELS_FILE:
      g_free (priv->labels_file);
      priv->labels_file = g_value_dup_string (value);
      /* while playing, read on the next frame */
      priv->labels_file_checked_us = 0;
      break;
    case PROP_PROMPT_TEMPLATE:
      g_free (priv->prompt_template);
      priv->prompt_template = g_value_dup_string (value);
      priv->labels_generation++;
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
    case PROP_SCHEDULE:
      priv->schedule = g_value_get_enum (value);
      break;
    case PROP_NIREQ:
      priv->nireq = g_value_get_uint (value);
      break;
    case PROP_MAX_ERRORS:
      priv->max_errors = g_value_get_uint (value);
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

  if (prop_id == PROP_STATS)
    {
      g_value_take_boxed (value, stats_structure (filter));
      return;
    }
  if (prop_id == PROP_VULKAN_DEVICE)
    {
      g_value_take_object (value, gst_umgclip_vulkan_get_device (priv->vulkan));
      return;
    }
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
    case PROP_SCHEDULE:
      g_value_set_enum (value, priv->schedule);
      break;
    case PROP_NIREQ:
      g_value_set_uint (value, priv->nireq);
      break;
    case PROP_MAX_ERRORS:
      g_value_set_uint (value, priv->max_errors);
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

const gchar *
gst_umgclip_filter_get_model_id (GstUmgClipFilter *filter)
{
  return get_priv (filter)->model_id;
}

gchar *
gst_umgclip_filter_dup_stream_name (GstUmgClipFilter *filter)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  gchar *name;
  GST_OBJECT_LOCK (filter);
  name
      = g_strdup (priv->upstream_stream != NULL ? priv->upstream_stream : GST_OBJECT_NAME (filter));
  GST_OBJECT_UNLOCK (filter);
  return name;
}

const UmgClipInfo *
gst_umgclip_filter_get_info (GstUmgClipFilter *filter)
{
  return get_priv (filter)->info;
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
gst_umgclip_filter_get_labels (GstUmgClipFilter *filter, UmgClipContext *context, GError **error)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  g_auto (GStrv) labels = NULL, templates = NULL;
  g_autoptr (GError) bad_text = NULL;
  GstUmgClipLabels *fresh, *result;
  guint generation;

  g_mutex_lock (&priv->labels_lock);
  GST_OBJECT_LOCK (filter);
  generation = priv->labels_generation;
  if (priv->labels == NULL || priv->labels_encoded != generation)
    {
      /* The labels property, when set, wins over labels-file. Text that is not UTF-8 fails,
       * naming the value, rather than being ranked as something else. */
      if (!g_utf8_validate (priv->labels_text != NULL ? priv->labels_text : "", -1, NULL))
        {
          g_autofree gchar *shown = g_utf8_make_valid (priv->labels_text, -1);
          g_autofree gchar *what = g_strdup_printf ("labels '%s'", shown);
          umgclip_check_utf8 (what, priv->labels_text, &bad_text);
        }
      labels = umgclip_split_list (priv->labels_text,
                                   GST_UMGCLIP_FILTER_GET_CLASS (filter)->label_separators);
      if (labels[0] == NULL && priv->file_labels != NULL)
        {
          g_strfreev (labels);
          labels = g_strdupv (priv->file_labels);
        }
      templates = umgclip_prompt_templates (priv->prompt_template);
    }
  GST_OBJECT_UNLOCK (filter);

  if (bad_text != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&bad_text));
      g_mutex_unlock (&priv->labels_lock);
      return NULL;
    }
  if (labels != NULL)
    {
      fresh = g_new0 (GstUmgClipLabels, 1);
      fresh->refcount = 1;
      fresh->n_labels = g_strv_length (labels);
      fresh->dim = priv->info->embed_dim;
      fresh->labels = g_steal_pointer (&labels);
      GST_DEBUG_OBJECT (filter, "encoding %u labels with %u templates", fresh->n_labels,
                        g_strv_length (templates));
      fresh->embeddings
          = fresh->n_labels == 0
                ? g_new0 (gfloat, fresh->dim)
                : gst_umgclip_model_encode_labels (
                    priv->model, context, (const gchar *const *) fresh->labels, fresh->n_labels,
                    (const gchar *const *) templates, g_strv_length (templates), error);
      if (fresh->embeddings == NULL)
        {
          /* tried again with the next frame rather than kept half made */
          gst_umgclip_labels_unref (fresh);
          g_mutex_unlock (&priv->labels_lock);
          return NULL;
        }
      gst_umgclip_labels_unref (priv->labels);
      priv->labels = fresh;
      priv->labels_encoded = generation;
    }
  result = gst_umgclip_labels_ref (priv->labels);
  g_mutex_unlock (&priv->labels_lock);
  return result;
}

/* ---- frames to jobs ---- */

/* The runtime's view of a frame of info: format, size and, for YUV, the colour matrix and range
 * from the caps' colorimetry; planes are filled in by the caller. */
static gboolean
frame_layout (const GstVideoInfo *info, UmgClipFrame *out, GError **error)
{
  gdouble kr, kb;

  memset (out, 0, sizeof *out);
  if (!umgclip_pixel_format_parse (gst_video_format_to_string (GST_VIDEO_INFO_FORMAT (info)),
                                   &out->format, error))
    return FALSE;
  out->width = GST_VIDEO_INFO_WIDTH (info);
  out->height = GST_VIDEO_INFO_HEIGHT (info);
  /* unknown matrices fall back to BT.601 in the runtime */
  if (gst_video_color_matrix_get_Kr_Kb (info->colorimetry.matrix, &kr, &kb))
    {
      out->kr = kr;
      out->kb = kb;
    }
  out->full_range = info->colorimetry.range == GST_VIDEO_COLOR_RANGE_0_255;
  return TRUE;
}

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

static void
frame_job_free (FrameJob *fj)
{
  if (fj == NULL)
    return;
  if (fj->is_mapped)
    gst_video_frame_unmap (&fj->mapped);
  gst_clear_buffer (&fj->host);
  g_clear_pointer (&fj->device_frame, umgclip_device_frame_free);
  gst_clear_buffer (&fj->buffer);
  g_clear_error (&fj->job.error);
  g_clear_error (&fj->job.fault);
  g_free (fj->embedding);
  g_free (fj->dense);
  result_unref (fj->result);
  g_free (fj);
}

/* On the thread that runs the job: the subclass's inference on the pass's features. */
static gboolean
frame_job_finish (GstUmgClipJob *job, UmgClipContext *context, GError **error)
{
  FrameJob *fj = (FrameJob *) job;
  GstUmgClipFilter *filter = fj->filter;
  GstUmgClipFilterClass *klass = GST_UMGCLIP_FILTER_GET_CLASS (filter);
  GstUmgClipFrame frame = {
    .buffer = fj->buffer,
    .info = &fj->info,
    .layout = job->frame,
    .pts = GST_BUFFER_PTS (fj->buffer),
  };
  Result *result = g_new0 (Result, 1);

  if (job->backbone)
    {
      umgclip_l2_normalize (fj->embedding, fj->features.dim);
      fj->features.embedding = fj->embedding;
      fj->features.dense = fj->dense;
    }
  result->refcount = 1;
  result->source_pts = frame.pts;
  result->result.metas = gst_buffer_new ();
  if (!klass->infer (filter, context, &frame, &fj->features, &result->result, error))
    {
      result_unref (result);
      return FALSE;
    }
  fj->result = result;
  return TRUE;
}

/* A job for buffer (a reference taken): its features from an upstream embedding meta when one
 * matches, else a vision pass on its pixels, where they lie when the model can read them
 * there (host memory, or Vulkan memory of the model's device), else through a host copy. */
static FrameJob *
frame_job_new (GstUmgClipFilter *filter, GstBuffer *buffer, GError **error)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  GstUmgClipFilterClass *klass = GST_UMGCLIP_FILTER_GET_CLASS (filter);
  GstVideoFilter *video_filter = GST_VIDEO_FILTER (filter);
  const UmgClipInfo *info = priv->info;
  const guint grid_w = priv->input_width / info->patch_size;
  const guint grid_h = priv->input_height / info->patch_size;
  FrameJob *fj = g_new0 (FrameJob, 1);
  UmgClipVulkanPlane planes[3];
  gboolean want_dense = klass->wants_dense != NULL && klass->wants_dense (filter);
  gpointer state = NULL;
  GstMeta *meta;
  guint n_planes;

  fj->filter = filter;
  fj->buffer = gst_buffer_ref (buffer);
  fj->info = video_filter->in_info;
  fj->flushes = priv->flushes;
  fj->job.finish = frame_job_finish;
  fj->features.dim = info->embed_dim;
  fj->features.input_width = priv->input_width;
  fj->features.input_height = priv->input_height;
  GST_OBJECT_LOCK (filter);
  fj->features.dense_mode = priv->dense_mode;
  GST_OBJECT_UNLOCK (filter);
  if (!frame_layout (&fj->info, &fj->job.frame, error))
    goto failed;

  while ((meta
          = gst_buffer_iterate_meta_filtered (buffer, &state, GST_UMGCLIP_EMBEDDING_META_API_TYPE)))
    {
      GstUmgClipEmbeddingMeta *upstream = (GstUmgClipEmbeddingMeta *) meta;
      if (!upstream_meta_matches (filter, upstream, want_dense, fj->features.dense_mode,
                                  fj->features.dim))
        continue;
      GST_LOG_OBJECT (filter, "reusing the features of an upstream embedding meta");
      fj->features.embedding = upstream->embedding;
      if (want_dense)
        {
          fj->features.dense = upstream->dense;
          fj->features.grid_width = upstream->grid_width;
          fj->features.grid_height = upstream->grid_height;
        }
      return fj;
    }

  fj->job.backbone = TRUE;
  fj->job.input_width = priv->input_width;
  fj->job.input_height = priv->input_height;
  fj->embedding = g_new (gfloat, info->embed_dim);
  fj->job.request.embedding = fj->embedding;
  fj->job.request.dense_mode = fj->features.dense_mode;
  fj->features.computed = TRUE;
  if (want_dense)
    {
      fj->dense = g_new (gfloat, (gsize) grid_w * grid_h * info->embed_dim);
      fj->job.request.dense = fj->dense;
      fj->features.grid_width = grid_w;
      fj->features.grid_height = grid_h;
    }

  if (gst_umgclip_vulkan_device_planes (priv->vulkan, buffer, &fj->info,
                                        gst_umgclip_model_get_vk_device (priv->model),
                                        &fj->job.frame, planes, &n_planes))
    {
      /* copied on the device into the model's memory, now, in stream order */
      fj->device_frame = gst_umgclip_model_new_device_frame (priv->model, &fj->job.frame, planes,
                                                             n_planes, error);
      /* GStreamer 1.22's vulkanupload hands its staging buffer to the next frame as soon as
       * it has submitted the copy into the image, not once the copy ran: waiting here for our
       * copy, which follows that one on the queue, keeps the next frame from overwriting this
       * one before the device has read it. A wait for a device-side copy, not a download. */
      if (fj->device_frame == NULL || !umgclip_device_frame_wait (fj->device_frame, error))
        goto failed;
      gst_umgclip_vulkan_mark_copied (buffer);
      fj->job.frame.device = fj->device_frame;
      return fj;
    }

  fj->host = gst_umgclip_vulkan_host_buffer (priv->vulkan, &fj->info, buffer, error);
  if (fj->host == NULL)
    goto failed;
  if (!gst_video_frame_map (&fj->mapped, &fj->info, fj->host, GST_MAP_READ))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "could not map a %dx%d %s frame for reading", GST_VIDEO_INFO_WIDTH (&fj->info),
                   GST_VIDEO_INFO_HEIGHT (&fj->info), GST_VIDEO_INFO_NAME (&fj->info));
      goto failed;
    }
  fj->is_mapped = TRUE;
  for (guint i = 0; i < GST_VIDEO_FRAME_N_PLANES (&fj->mapped) && i < 3; i++)
    {
      fj->job.frame.planes[i] = GST_VIDEO_FRAME_PLANE_DATA (&fj->mapped, i);
      fj->job.frame.strides[i] = GST_VIDEO_FRAME_PLANE_STRIDE (&fj->mapped, i);
    }
  return fj;

failed:
  frame_job_free (fj);
  return NULL;
}

/* ---- results on frames ---- */

/* ROI metas get distinct ids 0..n-1, so that applications can enumerate them with
 * gst_buffer_get_video_region_of_interest_meta_id (). Ids already distinct and in range are
 * kept, first come first served, so upstream's parent ids stay valid; the others (ours, copied
 * from a result with its own numbering) take the free ones in buffer order. */
static void
number_rois (GstBuffer *buffer)
{
  g_autoptr (GPtrArray) rois = g_ptr_array_new ();
  g_autofree gboolean *taken = NULL, *keeps = NULL;
  gpointer state = NULL;
  GstMeta *meta;
  guint next_free = 0;

  while ((meta = gst_buffer_iterate_meta_filtered (buffer, &state,
                                                   GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)))
    g_ptr_array_add (rois, meta);
  taken = g_new0 (gboolean, MAX (rois->len, 1));
  keeps = g_new0 (gboolean, MAX (rois->len, 1));
  for (guint i = 0; i < rois->len; i++)
    {
      gint id = ((GstVideoRegionOfInterestMeta *) rois->pdata[i])->id;
      if (id >= 0 && (guint) id < rois->len && !taken[id])
        taken[id] = keeps[i] = TRUE;
    }
  for (guint i = 0; i < rois->len; i++)
    {
      if (keeps[i])
        continue;
      while (taken[next_free])
        next_free++;
      ((GstVideoRegionOfInterestMeta *) rois->pdata[i])->id = (gint) next_free;
      taken[next_free] = TRUE;
    }
}

/* The newest result (may be NULL) onto buffer, then the ROIs numbered. */
static void
apply_result (GstUmgClipFilter *filter, GstBuffer *buffer, Result *result)
{
  GstUmgClipFilterClass *klass = GST_UMGCLIP_FILTER_GET_CLASS (filter);

  if (result != NULL)
    {
      gst_buffer_copy_into (buffer, result->result.metas, GST_BUFFER_COPY_META, 0, -1);
      if (klass->apply != NULL)
        klass->apply (filter, buffer, &result->result,
                      result->source_pts == GST_BUFFER_PTS (buffer));
    }
  number_rois (buffer);
}

static void
post_inference_message (GstUmgClipFilter *filter, const FrameJob *fj)
{
  GstStructure *structure = gst_structure_new (
      "umgclip-inference", "inference-time", G_TYPE_UINT64,
      (guint64) (fj->job.finished_us - fj->job.started_us) * GST_USECOND, "pts", G_TYPE_UINT64,
      GST_BUFFER_PTS (fj->buffer), "backbone", G_TYPE_BOOLEAN, fj->job.backbone, "batch",
      G_TYPE_UINT, fj->job.batch_size, NULL);
  gst_element_post_message (GST_ELEMENT (filter),
                            gst_message_new_element (GST_OBJECT (filter), structure));
}

/* A finished job, on the streaming thread: its result becomes the newest, or its failure is
 * counted, warned about and, at max-errors in a row, posted as the element's error. */
static void
take_job (GstUmgClipFilter *filter, FrameJob *fj)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  const GstUmgClipJob *job = &fj->job;
  guint max_errors;

  if (fj->flushes != priv->flushes)
    return; /* from before a flush: nobody wants it */
  if (job->error == NULL && fj->result != NULL)
    {
      GST_OBJECT_LOCK (filter);
      priv->stats.inferences++;
      priv->stats.inference_us += job->finished_us - job->started_us;
      priv->stats.host_copies += job->request.host_copies + fj->result->result.host_copies;
      if (job->batch_size > 0)
        {
          priv->stats.batches++;
          priv->stats.batched_frames += job->batch_size;
        }
      if (job->fault != NULL)
        {
          priv->stats.errors++;
          priv->stats.recoveries++;
        }
      GST_OBJECT_UNLOCK (filter);
      if (job->fault != NULL)
        GST_ELEMENT_WARNING (
            filter, LIBRARY, FAILED,
            ("Inference failed on model %s: %s", priv->model_id, job->fault->message),
            ("frame pts %" GST_TIME_FORMAT "; the model was loaded again and "
             "the frame was run again on it",
             GST_TIME_ARGS (GST_BUFFER_PTS (fj->buffer))));
      priv->consecutive_errors = 0;
      g_clear_pointer (&priv->last, result_unref);
      priv->last = result_ref (fj->result);
      post_inference_message (filter, fj);
      return;
    }

  GST_OBJECT_LOCK (filter);
  priv->stats.errors++;
  if (job->recovered)
    priv->stats.recoveries++;
  max_errors = priv->max_errors;
  GST_OBJECT_UNLOCK (filter);
  priv->consecutive_errors++;
  /* frames go without results until inference works again */
  g_clear_pointer (&priv->last, result_unref);
  GST_ELEMENT_WARNING (filter, LIBRARY, FAILED,
                       ("Inference failed on model %s: %s", priv->model_id,
                        job->error != NULL ? job->error->message : "no result"),
                       ("frame pts %" GST_TIME_FORMAT "; %s; %u failure(s) in a row of at most %u",
                        GST_TIME_ARGS (GST_BUFFER_PTS (fj->buffer)),
                        job->recovered ? "the model was loaded again and frames keep flowing"
                                       : "frames keep flowing without results",
                        priv->consecutive_errors, max_errors));
  if (max_errors > 0 && priv->consecutive_errors >= max_errors
      && g_atomic_int_compare_and_exchange (&priv->failed, FALSE, TRUE))
    {
      GST_ELEMENT_ERROR (filter, LIBRARY, FAILED,
                         ("Inference failed %u times in a row on model %s: %s",
                          priv->consecutive_errors, priv->model_id,
                          job->error != NULL ? job->error->message : "no result"),
                         ("max-errors=%u", max_errors));
    }
}

/* The longest a frame waited in the element; the pipeline re-queries latency when it grew. */
static void
update_latency (GstUmgClipFilter *filter, GstClockTime waited)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  gboolean grew;
  GST_OBJECT_LOCK (filter);
  if (waited > priv->latency)
    priv->latency = waited;
  grew = priv->latency > priv->reported_latency + priv->reported_latency / 4;
  GST_OBJECT_UNLOCK (filter);
  if (grew)
    gst_element_post_message (GST_ELEMENT (filter), gst_message_new_latency (GST_OBJECT (filter)));
}

/* ---- the schedule ---- */

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

/* Whether this frame should be inferred (inference-interval, QoS), counting the skips. A frame
 * is always inferred while there is no result to carry. */
static gboolean
inference_due (GstUmgClipFilter *filter, GstBuffer *buffer)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  /* the streaming thread's own count of what it handed over: last belongs to the output
   * thread in ordered mode */
  gboolean have_result = priv->inferring;
  guint interval;

  if (have_result && priv->frames_until_inference > 0)
    {
      priv->frames_until_inference--;
      GST_OBJECT_LOCK (filter);
      priv->stats.skipped_interval++;
      GST_OBJECT_UNLOCK (filter);
      return FALSE;
    }
  if (have_result && frame_is_late (filter, buffer))
    {
      GST_OBJECT_LOCK (filter);
      priv->stats.skipped_qos++;
      GST_OBJECT_UNLOCK (filter);
      return FALSE;
    }
  GST_OBJECT_LOCK (filter);
  interval = MAX (priv->inference_interval, 1);
  GST_OBJECT_UNLOCK (filter);
  priv->frames_until_inference = interval - 1;
  priv->inferring = TRUE;
  return TRUE;
}

/* auto: latest behind a live source, ordered otherwise (asked upstream on the first frame). */
static GstUmgClipSchedule
resolve_schedule (GstUmgClipFilter *filter)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  GstUmgClipSchedule schedule;
  g_autoptr (GstQuery) query = NULL;
  gboolean live = FALSE;

  GST_OBJECT_LOCK (filter);
  schedule = priv->schedule;
  GST_OBJECT_UNLOCK (filter);
  if (schedule != GST_UMGCLIP_SCHEDULE_AUTO)
    return schedule;
  query = gst_query_new_latency ();
  if (gst_pad_peer_query (GST_BASE_TRANSFORM_SINK_PAD (filter), query))
    gst_query_parse_latency (query, &live, NULL, NULL);
  GST_INFO_OBJECT (filter, "upstream is %slive: schedule %s", live ? "" : "not ",
                   live ? "latest" : "ordered");
  return live ? GST_UMGCLIP_SCHEDULE_LATEST : GST_UMGCLIP_SCHEDULE_ORDERED;
}

static GstFlowReturn
failed_job (GstUmgClipFilter *filter, GError *error)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  GST_ELEMENT_ERROR (filter, STREAM, FAILED,
                     ("Could not hand a frame to model %s: %s", priv->model_id, error->message),
                     (NULL));
  return GST_FLOW_ERROR;
}

/* schedule=sync: the frame's inference on this thread, now. */
static GstFlowReturn
run_sync (GstUmgClipFilter *filter, GstBuffer *buffer)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  g_autoptr (GError) error = NULL;
  FrameJob *fj;

  if (inference_due (filter, buffer))
    {
      fj = frame_job_new (filter, buffer, &error);
      if (fj == NULL)
        return failed_job (filter, error);
      gst_umgclip_model_run_now (priv->model, &fj->job);
      take_job (filter, fj);
      update_latency (filter, (fj->job.finished_us - fj->job.started_us) * GST_USECOND);
      frame_job_free (fj);
    }
  apply_result (filter, buffer, priv->last);
  return GST_FLOW_OK;
}

/* schedule=latest: take a finished result, start an inference when the worker is free for us,
 * and send the frame on with the newest result, never waiting. *buffer may be replaced by the
 * one to push. */
static GstFlowReturn
run_latest (GstUmgClipFilter *filter, GstBuffer **buffer_inout)
{
  GstBuffer *buffer = *buffer_inout;
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  g_autoptr (GError) error = NULL;

  if (priv->in_flight != NULL && gst_umgclip_model_job_done (priv->model, &priv->in_flight->job))
    {
      take_job (filter, priv->in_flight);
      g_clear_pointer (&priv->in_flight, frame_job_free);
    }
  if (inference_due (filter, buffer))
    {
      if (priv->in_flight != NULL)
        {
          GST_OBJECT_LOCK (filter);
          priv->stats.skipped_busy++;
          GST_OBJECT_UNLOCK (filter);
        }
      else
        {
          /* the job keeps this buffer to read; a copy that shares its pixels goes on and gets
           * the metas (a copy may hold a reference to its source, as GStreamer 1.26's does, so
           * the source is what the job keeps, not what is written to) */
          priv->in_flight = frame_job_new (filter, buffer, &error);
          if (priv->in_flight == NULL)
            return failed_job (filter, error);
          gst_umgclip_model_submit (priv->model, &priv->in_flight->job);
          *buffer_inout = gst_buffer_copy (buffer);
          gst_buffer_unref (buffer);
          buffer = *buffer_inout;
        }
    }
  apply_result (filter, buffer, priv->last);
  return GST_FLOW_OK;
}

static void
pending_free (Pending *pending)
{
  gst_clear_buffer (&pending->buffer);
  frame_job_free (pending->job);
  g_free (pending);
}

/* The output thread of schedule=ordered: the oldest waiting frame, once its result is in (or
 * carrying the newest before it), with that result, downstream. */
static gpointer
output_main (gpointer data)
{
  GstUmgClipFilter *filter = data;
  GstUmgClipFilterPrivate *priv = get_priv (filter);

  g_mutex_lock (&priv->pending_lock);
  while (!priv->stopping)
    {
      Pending *head = g_queue_peek_head (&priv->pending);
      GstFlowReturn ret;
      gboolean done = TRUE;

      if (head == NULL || priv->cancel_waits)
        {
          g_cond_wait (&priv->pending_cond, &priv->pending_lock);
          continue;
        }
      priv->output_busy = TRUE;
      g_mutex_unlock (&priv->pending_lock);
      if (head->job != NULL)
        done = gst_umgclip_model_wait (priv->model, &head->job->job, &priv->cancel_waits);
      g_mutex_lock (&priv->pending_lock);
      if (!done || priv->cancel_waits)
        {
          /* flushing or stopping: whoever set it drops the frames */
          priv->output_busy = FALSE;
          g_cond_broadcast (&priv->pending_cond);
          continue;
        }
      g_queue_pop_head (&priv->pending);
      g_mutex_unlock (&priv->pending_lock);

      if (head->job != NULL)
        take_job (filter, head->job);
      /* the job lets go of the frame first, so that it is writable for the metas */
      g_clear_pointer (&head->job, frame_job_free);
      apply_result (filter, head->buffer, priv->last);
      update_latency (filter, (g_get_monotonic_time () - head->queued_us) * GST_USECOND);
      ret = gst_pad_push (GST_BASE_TRANSFORM_SRC_PAD (filter), g_steal_pointer (&head->buffer));
      pending_free (head);

      g_mutex_lock (&priv->pending_lock);
      if (ret != GST_FLOW_OK)
        GST_DEBUG_OBJECT (filter, "downstream returned %s", gst_flow_get_name (ret));
      priv->downstream = ret;
      priv->output_busy = FALSE;
      g_cond_broadcast (&priv->pending_cond);
    }
  g_mutex_unlock (&priv->pending_lock);
  return NULL;
}

/* schedule=ordered, streaming thread: queue the frame (with its job when due) for the output
 * thread; beyond nireq waiting frames, wait for room. Returns what downstream last said. */
static GstFlowReturn
run_ordered (GstUmgClipFilter *filter, GstBuffer *buffer)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  g_autoptr (GError) error = NULL;
  Pending *pending = g_new0 (Pending, 1);
  GstFlowReturn ret;
  guint nireq;

  pending->buffer = buffer;
  pending->queued_us = g_get_monotonic_time ();
  if (inference_due (filter, buffer))
    {
      pending->job = frame_job_new (filter, buffer, &error);
      if (pending->job == NULL)
        {
          pending_free (pending);
          return failed_job (filter, error);
        }
      gst_umgclip_model_submit (priv->model, &pending->job->job);
    }
  if (priv->output_thread == NULL)
    priv->output_thread = g_thread_new ("umgclip-output", output_main, filter);

  GST_OBJECT_LOCK (filter);
  nireq = MAX (priv->nireq, 1);
  GST_OBJECT_UNLOCK (filter);
  g_mutex_lock (&priv->pending_lock);
  g_queue_push_tail (&priv->pending, pending);
  g_cond_broadcast (&priv->pending_cond);
  /* beyond nireq waiting frames, upstream waits for the oldest to go out */
  while (g_queue_get_length (&priv->pending) > nireq && !priv->cancel_waits)
    g_cond_wait (&priv->pending_cond, &priv->pending_lock);
  ret = priv->cancel_waits ? GST_FLOW_FLUSHING : priv->downstream;
  g_mutex_unlock (&priv->pending_lock);
  return ret;
}

/* Waits until the output thread has pushed every waiting frame (before a serialized event or
 * query goes on, and at EOS). */
static void
drain (GstUmgClipFilter *filter)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  g_mutex_lock (&priv->pending_lock);
  while ((!g_queue_is_empty (&priv->pending) || priv->output_busy) && priv->output_thread != NULL
         && !priv->cancel_waits)
    g_cond_wait (&priv->pending_cond, &priv->pending_lock);
  g_mutex_unlock (&priv->pending_lock);
}

void
gst_umgclip_filter_drain (GstUmgClipFilter *filter)
{
  if (get_priv (filter)->model != NULL)
    drain (filter);
}

/* Stops waits for jobs and the output thread's pushing (FLUSH_START, stop). */
static void
cancel_waits (GstUmgClipFilter *filter)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  g_mutex_lock (&priv->pending_lock);
  priv->cancel_waits = TRUE;
  g_cond_broadcast (&priv->pending_cond);
  g_mutex_unlock (&priv->pending_lock);
  if (priv->model != NULL)
    gst_umgclip_model_wake (priv->model);
}

/* Once the output thread holds no frame: waits for every job of this element and drops them
 * with their frames (FLUSH_STOP, stop). */
static void
drop_jobs (GstUmgClipFilter *filter)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  Pending *pending;

  g_mutex_lock (&priv->pending_lock);
  while (priv->output_busy)
    g_cond_wait (&priv->pending_cond, &priv->pending_lock);
  while ((pending = g_queue_pop_head (&priv->pending)) != NULL)
    {
      g_mutex_unlock (&priv->pending_lock);
      if (pending->job != NULL)
        gst_umgclip_model_wait (priv->model, &pending->job->job, NULL);
      pending_free (pending);
      g_mutex_lock (&priv->pending_lock);
    }
  priv->downstream = GST_FLOW_OK;
  g_mutex_unlock (&priv->pending_lock);
  if (priv->in_flight != NULL)
    {
      gst_umgclip_model_wait (priv->model, &priv->in_flight->job, NULL);
      g_clear_pointer (&priv->in_flight, frame_job_free);
    }
  g_clear_pointer (&priv->last, result_unref);
  priv->inferring = FALSE;
}

static void
stop_output_thread (GstUmgClipFilter *filter)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  if (priv->output_thread == NULL)
    return;
  g_mutex_lock (&priv->pending_lock);
  priv->stopping = TRUE;
  g_cond_broadcast (&priv->pending_cond);
  g_mutex_unlock (&priv->pending_lock);
  g_thread_join (priv->output_thread);
  priv->output_thread = NULL;
  priv->stopping = FALSE;
}

/* What identifies one version of a file: a replacement by rename changes the inode, a rewrite in
 * place the size or mtime. */
static gchar *
file_stamp (const gchar *path)
{
  GStatBuf st;
  if (g_stat (path, &st) != 0)
    return g_strdup ("missing");
  return g_strdup_printf ("%" G_GUINT64_FORMAT ":%" G_GINT64_FORMAT ":%" G_GINT64_FORMAT ":%ld",
                          (guint64) st.st_ino, (gint64) st.st_size, (gint64) st.st_mtim.tv_sec,
                          (long) st.st_mtim.tv_nsec);
}

/* Reads labels-file into a label list, or fails naming the file: unreadable, or no labels. */
static GStrv
read_labels_file (const gchar *path, GError **error)
{
  g_autofree gchar *contents = NULL;
  GStrv labels;
  g_autofree gchar *what = g_strdup_printf ("labels-file '%s'", path);
  if (!g_file_get_contents (path, &contents, NULL, error)
      || !umgclip_check_utf8 (what, contents, error))
    return NULL;
  labels = umgclip_split_list (contents, "\n");
  if (labels[0] == NULL)
    {
      g_strfreev (labels);
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s holds no labels", path);
      return NULL;
    }
  return labels;
}

/* A labels-file replaced while playing (a new list from an operator, or a config tool that
 * rewrites it) takes effect within a second: looked at no more often than that, re-read when its
 * stamp changed. A replacement that cannot be read or holds no labels keeps the labels in use,
 * with one warning per version of the file. Streaming thread only. */
static void
check_labels_file (GstUmgClipFilter *filter)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  g_autofree gchar *path = NULL, *stamp = NULL;
  g_autoptr (GError) error = NULL;
  gint64 now = g_get_monotonic_time ();
  GStrv labels;
  guint in_use;

  GST_OBJECT_LOCK (filter);
  if (priv->labels_file == NULL || *priv->labels_file == '\0'
      || (priv->labels_file_checked_us != 0 && now - priv->labels_file_checked_us < G_USEC_PER_SEC))
    {
      GST_OBJECT_UNLOCK (filter);
      return;
    }
  path = g_strdup (priv->labels_file);
  priv->labels_file_checked_us = now;
  GST_OBJECT_UNLOCK (filter);

  stamp = file_stamp (path);
  if (g_strcmp0 (stamp, priv->labels_file_stamp) == 0)
    return;
  g_free (priv->labels_file_stamp);
  priv->labels_file_stamp = g_strdup (stamp);
  labels = read_labels_file (path, &error);
  GST_OBJECT_LOCK (filter);
  in_use = priv->file_labels != NULL ? g_strv_length (priv->file_labels) : 0;
  if (labels != NULL)
    {
      g_strfreev (priv->file_labels);
      priv->file_labels = labels;
      /* the labels property, when set, still wins */
      priv->labels_generation++;
    }
  GST_OBJECT_UNLOCK (filter);
  if (labels != NULL)
    GST_ELEMENT_INFO (filter, RESOURCE, READ,
                      ("Read %u labels from labels-file '%s', which changed while playing",
                       g_strv_length (labels), path),
                      (NULL));
  else
    GST_ELEMENT_WARNING (filter, RESOURCE, READ,
                         ("labels-file '%s' changed while playing and cannot be used: %s; keeping "
                          "the %u labels read before",
                          path, error->message, in_use),
                         ("labels-file=%s", path));
}

/* Bytes a frame of info needs in buffer: from its video meta's plane offsets and strides when it
 * has one, else the caps' size. */
static gsize
frame_bytes_needed (const GstVideoInfo *info, GstBuffer *buffer)
{
  GstVideoMeta *vmeta = gst_buffer_get_video_meta (buffer);
  gsize needed = 0;
  if (vmeta == NULL)
    return GST_VIDEO_INFO_SIZE (info);
  for (guint p = 0; p < vmeta->n_planes; p++)
    {
      gint comp[GST_VIDEO_MAX_COMPONENTS];
      gsize rows;
      gst_video_format_info_component (info->finfo, p, comp);
      rows = GST_VIDEO_FORMAT_INFO_SCALE_HEIGHT (info->finfo, comp[0], vmeta->height);
      needed = MAX (needed, vmeta->offset[p] + (gsize) vmeta->stride[p] * rows);
    }
  return needed;
}

/* A buffer smaller than its caps say (cut short by a broken source, demuxer or network, or empty)
 * is no frame: dropped with a warning (the first since start; the others are counted in stats as
 * "malformed") rather than failing the stream or reaching elements that would read past it.
 * Vulkan memory is sized by the device, not by the caps, and left to the upload checks. */
static gboolean
frame_is_malformed (GstUmgClipFilter *filter, GstBuffer *buffer)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  const GstVideoInfo *info = &GST_VIDEO_FILTER (filter)->in_info;
  gsize size = gst_buffer_get_size (buffer), needed;

  for (guint i = 0; i < gst_buffer_n_memory (buffer); i++)
    {
      GstMemory *memory = gst_buffer_peek_memory (buffer, i);
      if (memory->allocator != NULL && memory->allocator->mem_type != NULL
          && g_str_has_prefix (memory->allocator->mem_type, "Vulkan"))
        return FALSE;
    }
  needed = frame_bytes_needed (info, buffer);
  if (size >= needed)
    return FALSE;
  GST_OBJECT_LOCK (filter);
  priv->stats.malformed++;
  GST_OBJECT_UNLOCK (filter);
  if (!priv->warned_malformed)
    {
      priv->warned_malformed = TRUE;
      GST_ELEMENT_WARNING (filter, STREAM, FORMAT,
                           ("Dropped a buffer of %" G_GSIZE_FORMAT " bytes: a %dx%d %s frame (the "
                            "caps) needs %" G_GSIZE_FORMAT,
                            size, GST_VIDEO_INFO_WIDTH (info), GST_VIDEO_INFO_HEIGHT (info),
                            GST_VIDEO_INFO_NAME (info), needed),
                           ("pts %" GST_TIME_FORMAT "; later ones are counted in stats (malformed)",
                            GST_TIME_ARGS (GST_BUFFER_PTS (buffer))));
    }
  else
    GST_DEBUG_OBJECT (filter, "dropped a buffer of %" G_GSIZE_FORMAT " bytes", size);
  return TRUE;
}

static GstFlowReturn
gst_umgclip_filter_generate_output (GstBaseTransform *trans, GstBuffer **outbuf)
{
  GstUmgClipFilter *filter = GST_UMGCLIP_FILTER (trans);
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  GstBuffer *input = trans->queued_buf;
  GstBuffer *buffer;
  GstFlowReturn ret;

  trans->queued_buf = NULL;
  *outbuf = NULL;
  if (input == NULL)
    return g_atomic_int_get (&priv->failed) ? GST_FLOW_ERROR : GST_FLOW_OK;
  if (!GST_VIDEO_FILTER (trans)->negotiated)
    {
      gst_buffer_unref (input);
      GST_ELEMENT_ERROR (filter, CORE, NEGOTIATION, (NULL), ("unknown format"));
      return GST_FLOW_NOT_NEGOTIATED;
    }
  if (g_atomic_int_get (&priv->failed))
    {
      gst_buffer_unref (input);
      return GST_FLOW_ERROR;
    }
  if (frame_is_malformed (filter, input))
    {
      gst_buffer_unref (input);
      return GST_FLOW_OK;
    }
  check_labels_file (filter);
  if (priv->mode == GST_UMGCLIP_SCHEDULE_AUTO)
    {
      GstUmgClipSchedule mode = resolve_schedule (filter);
      GST_OBJECT_LOCK (filter);
      priv->mode = mode;
      GST_OBJECT_UNLOCK (filter);
    }
  GST_OBJECT_LOCK (filter);
  priv->stats.frames++;
  GST_OBJECT_UNLOCK (filter);

  /* metas are added, pixels never touched: a shallow copy when another holds the buffer */
  buffer = gst_buffer_make_writable (input);
  switch (priv->mode)
    {
    case GST_UMGCLIP_SCHEDULE_ORDERED:
      /* the output thread pushes it */
      ret = run_ordered (filter, buffer);
      break;
    case GST_UMGCLIP_SCHEDULE_LATEST:
      ret = run_latest (filter, &buffer);
      *outbuf = buffer;
      break;
    case GST_UMGCLIP_SCHEDULE_SYNC:
    case GST_UMGCLIP_SCHEDULE_AUTO:
    default:
      ret = run_sync (filter, buffer);
      *outbuf = buffer;
      break;
    }
  return g_atomic_int_get (&priv->failed) ? GST_FLOW_ERROR : ret;
}

static gboolean
gst_umgclip_filter_sink_event (GstBaseTransform *trans, GstEvent *event)
{
  GstUmgClipFilter *filter = GST_UMGCLIP_FILTER (trans);
  GstUmgClipFilterPrivate *priv = get_priv (filter);

  switch (GST_EVENT_TYPE (event))
    {
    case GST_EVENT_STREAM_START:
      {
        /* the stream's name for indexes and alerts: a file's or camera's URI, else the id */
        g_autoptr (GstQuery) query = gst_query_new_uri ();
        gchar *uri = NULL;
        const gchar *stream_id = NULL;
        gst_event_parse_stream_start (event, &stream_id);
        if (gst_pad_peer_query (GST_BASE_TRANSFORM_SINK_PAD (trans), query))
          gst_query_parse_uri (query, &uri);
        GST_OBJECT_LOCK (filter);
        g_free (priv->upstream_stream);
        priv->upstream_stream = uri != NULL ? uri : g_strdup (stream_id);
        GST_OBJECT_UNLOCK (filter);
      }
      if (priv->model != NULL)
        drain (filter);
      break;
    case GST_EVENT_FLUSH_START:
      /* from another thread: whoever waits for a job or for room stops waiting */
      cancel_waits (filter);
      break;
    case GST_EVENT_FLUSH_STOP:
      /* the streaming thread has stopped: drop what waited */
      if (priv->model != NULL)
        drop_jobs (filter);
      priv->flushes++;
      priv->frames_until_inference = 0;
      g_mutex_lock (&priv->pending_lock);
      priv->cancel_waits = FALSE;
      g_mutex_unlock (&priv->pending_lock);
      break;
    default:
      /* waiting frames go before any serialized event (caps, segment, EOS, ...) */
      if (GST_EVENT_IS_SERIALIZED (event) && priv->model != NULL)
        drain (filter);
      break;
    }
  return GST_BASE_TRANSFORM_CLASS (gst_umgclip_filter_parent_class)->sink_event (trans, event);
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

/* Latency: frames wait in the element in sync and ordered (the longest wait seen so far, 0
 * before the first frame; a latency message is posted when it grows); never in latest. */
static gboolean
gst_umgclip_filter_query (GstBaseTransform *trans, GstPadDirection direction, GstQuery *query)
{
  GstUmgClipFilter *filter = GST_UMGCLIP_FILTER (trans);
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  gboolean ok;

  if (gst_umgclip_vulkan_handle_query (priv->vulkan, query))
    return TRUE;
  /* a serialized query from upstream (allocation, drain) comes after the frames before it */
  if (direction == GST_PAD_SINK && GST_QUERY_IS_SERIALIZED (query) && priv->model != NULL)
    drain (filter);
  ok = GST_BASE_TRANSFORM_CLASS (gst_umgclip_filter_parent_class)->query (trans, direction, query);

  if (ok && direction == GST_PAD_SRC && GST_QUERY_TYPE (query) == GST_QUERY_LATENCY)
    {
      gboolean live;
      GstClockTime min, max, ours;
      gst_query_parse_latency (query, &live, &min, &max);
      GST_OBJECT_LOCK (trans);
      ours = priv->mode == GST_UMGCLIP_SCHEDULE_LATEST ? 0 : priv->latency;
      priv->reported_latency = ours;
      GST_OBJECT_UNLOCK (trans);
      min += ours;
      if (GST_CLOCK_TIME_IS_VALID (max))
        max += ours;
      gst_query_set_latency (query, live, min, max);
    }
  return ok;
}

/* ---- lifecycle ---- */

static void
release_resources (GstUmgClipFilter *filter)
{
  GstUmgClipFilterPrivate *priv = get_priv (filter);
  if (priv->model != NULL)
    {
      cancel_waits (filter);
      stop_output_thread (filter);
      drop_jobs (filter);
    }
  priv->cancel_waits = FALSE;
  g_mutex_lock (&priv->labels_lock);
  g_clear_pointer (&priv->labels, gst_umgclip_labels_unref);
  g_mutex_unlock (&priv->labels_lock);
  g_clear_pointer (&priv->file_labels, g_strfreev);
  g_clear_pointer (&priv->model_id, g_free);
  {
    GstUmgClipModel *model;
    /* stats reads the model under labels_lock: let go of it outside the lock */
    g_mutex_lock (&priv->labels_lock);
    model = g_steal_pointer (&priv->model);
    g_mutex_unlock (&priv->labels_lock);
    gst_umgclip_model_release (model);
  }
  priv->info = NULL;
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
  UmgClipVulkanDevice shared;
  gboolean adopt = FALSE;
  UmgClipDeviceKind device_kind;
  gint device_index, size, patch;
  guint input_size;

  GST_OBJECT_LOCK (filter);
  model_dir = g_strdup (priv->model_dir);
  device = g_strdup (priv->device);
  labels_file = g_strdup (priv->labels_file);
  input_size = priv->input_size;
  priv->earliest_time = GST_CLOCK_TIME_NONE;
  memset (&priv->stats, 0, sizeof priv->stats);
  priv->latency = priv->reported_latency = 0;
  GST_OBJECT_UNLOCK (filter);

  if (!umgclip_parse_device (device, &device_kind, &device_index, &error))
    {
      GST_ELEMENT_ERROR (filter, RESOURCE, SETTINGS, ("Unknown device: %s", error->message),
                         ("device=%s", device));
      return FALSE;
    }
  /* Frames from a Vulkan element upstream are best analysed on its device, its VkDevice
   * adopted: one device for the whole pipeline, frames read where they lie. */
  if (device_kind != UMGCLIP_DEVICE_CPU && device_index < 0)
    {
      gint shared_index = gst_umgclip_vulkan_find_device (priv->vulkan);
      if (shared_index >= 0)
        {
          device_kind = UMGCLIP_DEVICE_VULKAN;
          device_index = shared_index;
          adopt = gst_umgclip_vulkan_describe_device (priv->vulkan, &shared);
        }
    }
  if (model_dir == NULL || *model_dir == '\0')
    {
      GST_ELEMENT_ERROR (filter, RESOURCE, NOT_FOUND, ("No model directory given"),
                         ("set the model property or UMGCLIP_MODEL"));
      return FALSE;
    }
  {
    GstUmgClipModel *model = gst_umgclip_model_acquire (model_dir, device_kind, device_index,
                                                        adopt ? &shared : NULL, &error);
    g_mutex_lock (&priv->labels_lock);
    priv->model = model;
    g_mutex_unlock (&priv->labels_lock);
  }
  if (priv->model == NULL)
    {
      GST_ELEMENT_ERROR (filter, RESOURCE, OPEN_READ,
                         ("Could not load model '%s': %s", model_dir, error->message),
                         ("model=%s device=%s", model_dir, device));
      release_resources (filter);
      return FALSE;
    }
  priv->info = gst_umgclip_model_get_info (priv->model);
  GST_OBJECT_LOCK (filter);
  priv->vulkan_device_index = device_kind == UMGCLIP_DEVICE_VULKAN ? device_index : -1;
  GST_OBJECT_UNLOCK (filter);
  priv->model_id = g_path_get_basename (model_dir);

  /* The network input is square and a whole number of patches. */
  patch = priv->info->patch_size;
  size = input_size > 0 ? (gint) input_size : priv->info->image_size;
  size = MAX (patch, (size + patch / 2) / patch * patch);
  priv->input_width = priv->input_height = size;
  GST_INFO_OBJECT (filter, "model %s on %s, network input %dx%d", model_dir, priv->info->backend,
                   size, size);
  /* an input-size that cannot fit the device fails here, not inside the backend later */
  if (!gst_umgclip_model_check_input_size (priv->model, size, size, &error))
    {
      GST_ELEMENT_ERROR (filter, RESOURCE, NO_SPACE_LEFT,
                         ("input-size %d does not fit: %s", size, error->message),
                         ("model=%s device=%s", model_dir, device));
      release_resources (filter);
      return FALSE;
    }

  priv->warned_malformed = FALSE;
  priv->labels_file_checked_us = g_get_monotonic_time ();
  g_clear_pointer (&priv->labels_file_stamp, g_free);
  if (labels_file != NULL && *labels_file != '\0')
    {
      g_autofree gchar *contents = NULL;
      /* stamped before reading: a change while it is read is seen by the first check */
      priv->labels_file_stamp = file_stamp (labels_file);
      g_autofree gchar *what = g_strdup_printf ("labels-file '%s'", labels_file);
      if (!g_file_get_contents (labels_file, &contents, NULL, &error))
        {
          GST_ELEMENT_ERROR (filter, RESOURCE, NOT_FOUND,
                             ("Could not read labels-file '%s': %s", labels_file, error->message),
                             (NULL));
          release_resources (filter);
          return FALSE;
        }
      if (!umgclip_check_utf8 (what, contents, &error))
        {
          GST_ELEMENT_ERROR (filter, RESOURCE, READ, ("%s", error->message), (NULL));
          release_resources (filter);
          return FALSE;
        }
      GST_OBJECT_LOCK (filter);
      priv->file_labels = umgclip_split_list (contents, "\n");
      GST_OBJECT_UNLOCK (filter);
    }
  /* Encoded now, before streaming, so that a bad label list fails at start rather than on the
   * first frame; changes while playing are encoded on the worker. */
  labels = gst_umgclip_filter_get_labels (filter, NULL, &error);
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

  priv->mode = GST_UMGCLIP_SCHEDULE_AUTO;
  priv->frames_until_inference = 0;
  priv->consecutive_errors = 0;
  priv->failed = FALSE;
  priv->inferring = FALSE;
  priv->downstream = GST_FLOW_OK;
  return TRUE;
}

static gboolean
gst_umgclip_filter_stop (GstBaseTransform *trans)
{
  release_resources (GST_UMGCLIP_FILTER (trans));
  return TRUE;
}

/* A new frame size: results of the old size must not be carried over (waiting frames of the
 * old size were drained before the caps event). */
static gboolean
gst_umgclip_filter_set_info (GstVideoFilter *video_filter, GstCaps *incaps, GstVideoInfo *in_info,
                             GstCaps *outcaps, GstVideoInfo *out_info)
{
  GstUmgClipFilterPrivate *priv = get_priv (GST_UMGCLIP_FILTER (video_filter));
  if (priv->model != NULL)
    drop_jobs (GST_UMGCLIP_FILTER (video_filter));
  priv->frames_until_inference = 0;
  return TRUE;
}

static GstFlowReturn
gst_umgclip_filter_transform_ip (GstBaseTransform *trans, GstBuffer *buffer)
{
  /* never called: generate_output does the work */
  return GST_FLOW_OK;
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
  g_free (priv->labels_file_stamp);
  g_free (priv->prompt_template);
  g_free (priv->upstream_stream);
  g_mutex_clear (&priv->labels_lock);
  g_mutex_clear (&priv->pending_lock);
  g_cond_clear (&priv->pending_cond);
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
  priv->schedule = DEFAULT_SCHEDULE;
  priv->nireq = DEFAULT_NIREQ;
  priv->max_errors = DEFAULT_MAX_ERRORS;
  priv->earliest_time = GST_CLOCK_TIME_NONE;
  g_mutex_init (&priv->labels_lock);
  g_mutex_init (&priv->pending_lock);
  g_cond_init (&priv->pending_cond);
  g_queue_init (&priv->pending);
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

  klass->label_separators = ",";

  gobject_class->set_property = gst_umgclip_filter_set_property;
  gobject_class->get_property = gst_umgclip_filter_get_property;
  gobject_class->finalize = gst_umgclip_filter_finalize;

  g_object_class_install_property (
      gobject_class, PROP_MODEL,
      g_param_spec_string ("model", "Model",
                           "Model directory (HuggingFace or OpenCLIP CLIP layout). Default: "
                           "$UMGCLIP_MODEL, else the model built in. Elements naming one "
                           "directory on one device share one loaded model",
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
          " Can be changed while playing (encoded on the model's worker); overrides labels-file",
          NULL, flags | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (
      gobject_class, PROP_LABELS_FILE,
      g_param_spec_string ("labels-file", "Labels file",
                           "Text file with one label per line (used when labels is not set); "
                           "re-read within a second when the file changes while playing",
                           NULL, flags | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      gobject_class, PROP_PROMPT_TEMPLATE,
      g_param_spec_string ("prompt-template", "Prompt template",
                           "Sentence a label is put into, {} marking the label; several "
                           "templates separated by ';' are averaged (prompt ensembling); "
                           "\"imagenet\": OpenAI's 80 ImageNet templates",
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
      gobject_class, PROP_SCHEDULE,
      g_param_spec_enum ("schedule", "Schedule",
                         "How frames wait for inference: ordered (each frame waits for its own "
                         "result, in order), latest (frames never wait and carry the newest "
                         "result, with its source-pts), auto (latest for live sources, ordered "
                         "otherwise) or sync (inference on the streaming thread, for debugging)",
                         GST_TYPE_UMGCLIP_SCHEDULE, DEFAULT_SCHEDULE,
                         flags | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      gobject_class, PROP_NIREQ,
      g_param_spec_uint ("nireq", "Inference requests",
                         "With schedule=ordered, how many frames may wait for inference at once "
                         "(the model's worker batches them); beyond that, upstream waits",
                         1, 64, DEFAULT_NIREQ, flags | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      gobject_class, PROP_MAX_ERRORS,
      g_param_spec_uint ("max-errors", "Maximum errors",
                         "Failed inferences in a row after which the element posts an error and "
                         "stops the stream; each failure before that is a warning, the model is "
                         "loaded again and frames keep flowing (0 = never stop)",
                         0, G_MAXUINT, DEFAULT_MAX_ERRORS, flags | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (
      gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
                          "Counters since start: schedule (the one in use: auto until the first "
                          "frame), frames, inferences, skipped-busy, "
                          "skipped-interval, skipped-qos, batches (passes that held our frames), "
                          "mean-batch, mean-inference-ms, errors, recoveries, host-copies "
                          "(frame-sized copies the CPU made), pending (frames waiting now) and "
                          "shared-by (elements using the same loaded model, this one included)",
                          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (
      gobject_class, PROP_VULKAN_DEVICE,
      g_param_spec_object (
          "vulkan-device", "Vulkan device",
          "The GstVulkanDevice shared with neighbouring Vulkan elements through GstContext "
          "(theirs, the application's, or one opened for a Vulkan element upstream); looked "
          "for at start unless device is cpu or vulkan:N, and the model then runs on it",
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
  transform_class->generate_output = GST_DEBUG_FUNCPTR (gst_umgclip_filter_generate_output);
  transform_class->transform_ip = GST_DEBUG_FUNCPTR (gst_umgclip_filter_transform_ip);
  transform_class->transform_ip_on_passthrough = FALSE;
  transform_class->sink_event = GST_DEBUG_FUNCPTR (gst_umgclip_filter_sink_event);
  transform_class->src_event = GST_DEBUG_FUNCPTR (gst_umgclip_filter_src_event);
  transform_class->query = GST_DEBUG_FUNCPTR (gst_umgclip_filter_query);
  video_filter_class->set_info = GST_DEBUG_FUNCPTR (gst_umgclip_filter_set_info);

  gst_type_mark_as_plugin_api (GST_TYPE_UMGCLIP_FILTER, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_UMGCLIP_DENSE_MODE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_UMGCLIP_SCHEDULE, 0);
}
