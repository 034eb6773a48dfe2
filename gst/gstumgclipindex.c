/* umgclipindex: every analysed frame's embedding (from umgclipenc's meta, or computed), its
 * stream, pts and wall time, a thumbnail on request, and the embeddings, boxes and tags of the
 * regions umgcliptag tagged, written to an index (store.h: a SQLite file or PostgreSQL) that
 * `umgclip search` reads. Rows are made on the model's worker and written by a thread of the
 * element's own, a transaction per few frames. */
#include "gstumgclipindex.h"

#include "store.h"
#include "umgclipmeta.h"

#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_umgclip_index_debug);
#define GST_CAT_DEFAULT gst_umgclip_index_debug

#define DEFAULT_LOCATION "umgclip-index.sqlite"
#define DEFAULT_STREAM NULL
#define DEFAULT_THUMBNAILS FALSE
#define DEFAULT_THUMBNAIL_SIZE 160
#define DEFAULT_COMMIT_FRAMES 25
#define DEFAULT_REGIONS TRUE
/* Rows waiting for the writer; the worker waits beyond this many. */
#define MAX_WAITING_ROWS 256
/* A waiting transaction is committed after this long without a new row. */
#define IDLE_COMMIT_US (G_USEC_PER_SEC / 2)

enum
{
  PROP_0,
  PROP_LOCATION,
  PROP_STREAM,
  PROP_THUMBNAILS,
  PROP_THUMBNAIL_SIZE,
  PROP_COMMIT_FRAMES,
  PROP_REGIONS,
};

/* One frame to write: the store's description, with its own copies. */
typedef struct
{
  UmgClipStoreFrame frame;
  gchar *stream;
  gfloat *embedding;
  GBytes *thumbnail;
  GArray *regions;  /* UmgClipStoreRegion */
  GPtrArray *owned; /* what the regions point to */
} Row;

struct _GstUmgClipIndex
{
  GstUmgClipFilter parent;

  /* Properties, under the object lock; also the stream id found upstream. */
  gchar *location;
  gchar *stream;
  gboolean thumbnails;
  guint thumbnail_size;
  guint commit_frames;
  gboolean regions;

  /* The writer: from start to stop. Under lock: rows, stopping, counters. */
  UmgClipStore *store;
  GThread *writer;
  GMutex lock;
  GCond cond;
  GQueue rows;
  gboolean stopping;
  guint64 written, failed;
};

G_DEFINE_TYPE_WITH_CODE (GstUmgClipIndex, gst_umgclip_index, GST_TYPE_UMGCLIP_FILTER,
                         GST_DEBUG_CATEGORY_INIT (gst_umgclip_index_debug, "umgclipindex", 0,
                                                  "umgclip index of frames and regions"))
GST_ELEMENT_REGISTER_DEFINE (umgclipindex, "umgclipindex", GST_RANK_NONE, GST_TYPE_UMGCLIP_INDEX)

static void
row_free (Row *row)
{
  g_free (row->stream);
  g_free (row->embedding);
  g_clear_pointer (&row->thumbnail, g_bytes_unref);
  g_array_unref (row->regions);
  g_ptr_array_unref (row->owned);
  g_free (row);
}

/* ---- the writer ---- */

static gpointer
writer_main (gpointer data)
{
  GstUmgClipIndex *index = data;
  guint64 uncommitted = 0;

  g_mutex_lock (&index->lock);
  for (;;)
    {
      Row *row = g_queue_pop_head (&index->rows);
      g_autoptr (GError) error = NULL;
      gboolean ok = TRUE, commit;

      if (row == NULL)
        {
          gint64 deadline = g_get_monotonic_time () + IDLE_COMMIT_US;
          if (index->stopping && uncommitted == 0)
            break;
          /* nothing new for a while, or stopping: what was added is committed */
          if (!index->stopping && g_cond_wait_until (&index->cond, &index->lock, deadline))
            continue;
          if (uncommitted == 0)
            continue;
          g_mutex_unlock (&index->lock);
          ok = umgclip_store_commit (index->store, &error);
          g_mutex_lock (&index->lock);
          if (ok)
            index->written += uncommitted;
          else
            index->failed += uncommitted;
          uncommitted = 0;
          if (!ok)
            GST_ELEMENT_WARNING (index, RESOURCE, WRITE,
                                 ("Could not write to the index: %s", error->message), (NULL));
          continue;
        }
      g_cond_broadcast (&index->cond); /* room for the worker */
      g_mutex_unlock (&index->lock);
      ok = umgclip_store_add (index->store, &row->frame, &error);
      uncommitted += ok;
      GST_OBJECT_LOCK (index);
      commit = uncommitted >= MAX (index->commit_frames, 1);
      GST_OBJECT_UNLOCK (index);
      if (ok && commit)
        ok = umgclip_store_commit (index->store, &error);
      row_free (row);
      g_mutex_lock (&index->lock);
      if (ok)
        index->written += commit ? uncommitted : 0;
      else
        {
          index->failed += MAX (uncommitted, 1);
          GST_ELEMENT_WARNING (index, RESOURCE, WRITE,
                               ("Could not write to the index: %s", error->message), (NULL));
        }
      if (commit || !ok)
        uncommitted = 0;
    }
  g_mutex_unlock (&index->lock);
  return NULL;
}

/* Hands a row to the writer, waiting while too many wait. */
static void
queue_row (GstUmgClipIndex *index, Row *row)
{
  g_mutex_lock (&index->lock);
  while (g_queue_get_length (&index->rows) >= MAX_WAITING_ROWS && !index->stopping)
    g_cond_wait (&index->cond, &index->lock);
  g_queue_push_tail (&index->rows, row);
  g_cond_broadcast (&index->cond);
  g_mutex_unlock (&index->lock);
}

/* ---- rows from frames ---- */

/* The tags of an "umgclip" param structure as JSON: [{"label": ..., "score": ...}, ...]. */
static gchar *
tags_json (const GstStructure *params)
{
  const GValue *labels = gst_structure_get_value (params, "tags");
  const GValue *scores = gst_structure_get_value (params, "scores");
  GString *json = g_string_new ("[");
  guint n = labels != NULL && scores != NULL && GST_VALUE_HOLDS_ARRAY (labels)
                    && GST_VALUE_HOLDS_ARRAY (scores)
                ? MIN (gst_value_array_get_size (labels), gst_value_array_get_size (scores))
                : 0;
  for (guint i = 0; i < n; i++)
    {
      const GValue *label = gst_value_array_get_value (labels, i);
      const GValue *score = gst_value_array_get_value (scores, i);
      g_autofree gchar *escaped = NULL;
      gchar number[G_ASCII_DTOSTR_BUF_SIZE];
      if (!G_VALUE_HOLDS_STRING (label) || !G_VALUE_HOLDS_DOUBLE (score))
        continue;
      escaped = g_strescape (g_value_get_string (label), NULL);
      g_string_append_printf (
          json, "%s{\"label\": \"%s\", \"score\": %s}", json->len > 1 ? ", " : "", escaped,
          g_ascii_formatd (number, sizeof number, "%.6g", g_value_get_double (score)));
    }
  g_string_append_c (json, ']');
  return g_string_free (json, FALSE);
}

/* The regions umgcliptag tagged on the frame: their boxes, best tags and RoI-Align embeddings
 * on the dense map (which covers the whole frame). */
static void
add_regions (GstUmgClipIndex *index, const GstUmgClipFrame *frame,
             const GstUmgClipFeatures *features, Row *row)
{
  const gint frame_width = GST_VIDEO_INFO_WIDTH (frame->info);
  const gint frame_height = GST_VIDEO_INFO_HEIGHT (frame->info);
  gpointer state = NULL;
  GstMeta *meta;

  if (features->dense == NULL)
    return;
  while ((meta = gst_buffer_iterate_meta_filtered (frame->buffer, &state,
                                                   GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)))
    {
      GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
      GstStructure *params = gst_video_region_of_interest_meta_get_param (roi, "umgclip");
      UmgClipStoreRegion region = { .x = roi->x, .y = roi->y, .w = roi->w, .h = roi->h };
      const gfloat box[4] = { roi->x, roi->y, roi->w, roi->h };
      gfloat *embedding;
      gdouble confidence = 0;
      gchar *label, *json;

      if (params == NULL || roi->w == 0 || roi->h == 0)
        continue;
      embedding = g_new (gfloat, features->dim);
      umgclip_roi_align (features->dense, features->grid_width, features->grid_height,
                         features->dim, (gfloat) features->grid_width / frame_width,
                         (gfloat) features->grid_height / frame_height, box, 1, embedding);
      label = g_strdup (gst_structure_get_string (params, "label"));
      json = tags_json (params);
      gst_umgclip_structure_get_number (params, "confidence", &confidence);
      g_ptr_array_add (row->owned, embedding);
      g_ptr_array_add (row->owned, label);
      g_ptr_array_add (row->owned, json);
      region.label = label;
      region.score = confidence;
      region.tags_json = json;
      region.embedding = embedding;
      g_array_append_val (row->regions, region);
    }
}

/* A small JPEG of the frame, when its pixels are in host memory. */
static GBytes *
thumbnail (GstUmgClipIndex *index, const GstUmgClipFrame *frame, guint size)
{
  const gint width = GST_VIDEO_INFO_WIDTH (frame->info);
  const gint height = GST_VIDEO_INFO_HEIGHT (frame->info);
  const gint longer = MAX (width, height);
  g_autoptr (GstCaps) caps = NULL, jpeg = NULL;
  g_autoptr (GstSample) sample = NULL, converted = NULL;
  g_autoptr (GError) error = NULL;
  GstMapInfo map;
  GBytes *bytes;

  if (frame->layout.device != NULL)
    {
      GST_DEBUG_OBJECT (index, "no thumbnail of a frame in Vulkan memory");
      return NULL;
    }
  caps = gst_video_info_to_caps (frame->info);
  jpeg = gst_caps_new_simple ("image/jpeg", "width", G_TYPE_INT,
                              MAX (1, (gint) ((gint64) width * size / longer)), "height",
                              G_TYPE_INT, MAX (1, (gint) ((gint64) height * size / longer)), NULL);
  sample = gst_sample_new (frame->buffer, caps, NULL, NULL);
  converted = gst_video_convert_sample (sample, jpeg, 10 * GST_SECOND, &error);
  if (converted == NULL)
    {
      GST_WARNING_OBJECT (index, "no thumbnail: %s", error != NULL ? error->message : "?");
      return NULL;
    }
  if (!gst_buffer_map (gst_sample_get_buffer (converted), &map, GST_MAP_READ))
    return NULL;
  bytes = g_bytes_new (map.data, map.size);
  gst_buffer_unmap (gst_sample_get_buffer (converted), &map);
  return bytes;
}

/* Wall time of the frame: a reference timestamp that came with it (a camera's NTP or Unix
 * clock), else now. */
static gint64
wall_time_us (GstBuffer *buffer)
{
  static GstCaps *unix_caps, *ntp_caps;
  GstReferenceTimestampMeta *meta;
  if (g_once_init_enter (&unix_caps))
    {
      ntp_caps = gst_caps_new_empty_simple ("timestamp/x-ntp");
      g_once_init_leave (&unix_caps, gst_caps_new_empty_simple ("timestamp/x-unix"));
    }
  if ((meta = gst_buffer_get_reference_timestamp_meta (buffer, unix_caps)) != NULL)
    return (gint64) (meta->timestamp / GST_USECOND);
  /* NTP counts from 1900, 2208988800 s before the Unix epoch */
  if ((meta = gst_buffer_get_reference_timestamp_meta (buffer, ntp_caps)) != NULL
      && meta->timestamp >= 2208988800ULL * GST_SECOND)
    return (gint64) ((meta->timestamp - 2208988800ULL * GST_SECOND) / GST_USECOND);
  return g_get_real_time ();
}

static gboolean
gst_umgclip_index_wants_dense (GstUmgClipFilter *filter)
{
  GstUmgClipIndex *index = GST_UMGCLIP_INDEX (filter);
  gboolean regions;
  GST_OBJECT_LOCK (index);
  regions = index->regions;
  GST_OBJECT_UNLOCK (index);
  return regions;
}

/* On the worker: the frame's row, handed to the writer. Nothing goes on the frame. */
static gboolean
gst_umgclip_index_infer (GstUmgClipFilter *filter, UmgClipContext *context,
                         const GstUmgClipFrame *frame, const GstUmgClipFeatures *features,
                         GstUmgClipResult *result, GError **error)
{
  GstUmgClipIndex *index = GST_UMGCLIP_INDEX (filter);
  Row *row = g_new0 (Row, 1);
  gboolean with_thumbnail, with_regions;
  guint size;

  GST_OBJECT_LOCK (index);
  row->stream = index->stream != NULL && *index->stream != '\0' ? g_strdup (index->stream) : NULL;
  with_thumbnail = index->thumbnails;
  with_regions = index->regions;
  size = index->thumbnail_size;
  GST_OBJECT_UNLOCK (index);
  if (row->stream == NULL)
    row->stream = gst_umgclip_filter_dup_stream_name (filter);

  row->embedding = g_memdup2 (features->embedding, features->dim * sizeof (gfloat));
  row->regions = g_array_new (FALSE, FALSE, sizeof (UmgClipStoreRegion));
  row->owned = g_ptr_array_new_with_free_func (g_free);
  if (with_regions)
    add_regions (index, frame, features, row);
  if (with_thumbnail)
    row->thumbnail = thumbnail (index, frame, size);
  row->frame = (UmgClipStoreFrame){
    .stream = row->stream,
    .pts = GST_CLOCK_TIME_IS_VALID (frame->pts) ? (gint64) frame->pts : -1,
    .wall_us = wall_time_us (frame->buffer),
    .embedding = row->embedding,
    .thumbnail = row->thumbnail,
    .regions = (const UmgClipStoreRegion *) row->regions->data,
    .n_regions = row->regions->len,
  };
  queue_row (index, row);
  return TRUE;
}

/* ---- lifecycle ---- */

static void
stop_writer (GstUmgClipIndex *index)
{
  if (index->writer != NULL)
    {
      g_mutex_lock (&index->lock);
      index->stopping = TRUE;
      g_cond_broadcast (&index->cond);
      g_mutex_unlock (&index->lock);
      g_thread_join (index->writer);
      index->writer = NULL;
    }
  g_queue_clear_full (&index->rows, (GDestroyNotify) row_free);
  g_clear_pointer (&index->store, umgclip_store_close);
}

static gboolean
gst_umgclip_index_start (GstBaseTransform *trans)
{
  GstUmgClipIndex *index = GST_UMGCLIP_INDEX (trans);
  GstUmgClipFilter *filter = GST_UMGCLIP_FILTER (trans);
  g_autoptr (GError) error = NULL;
  g_autofree gchar *location = NULL, *model_dir = NULL;

  if (!GST_BASE_TRANSFORM_CLASS (gst_umgclip_index_parent_class)->start (trans))
    return FALSE;
  GST_OBJECT_LOCK (index);
  location = g_strdup (index->location);
  GST_OBJECT_UNLOCK (index);
  g_object_get (index, "model", &model_dir, NULL);
  /* recorded so that `umgclip search` finds the model from any directory */
  if (model_dir != NULL && !g_path_is_absolute (model_dir))
    {
      gchar *absolute = g_canonicalize_filename (model_dir, NULL);
      g_free (model_dir);
      model_dir = absolute;
    }
  index->store = umgclip_store_open (location, TRUE, &error);
  if (index->store == NULL
      || !umgclip_store_bind_model (index->store, gst_umgclip_filter_get_model_id (filter),
                                    model_dir, gst_umgclip_filter_get_info (filter)->embed_dim,
                                    &error))
    {
      GST_ELEMENT_ERROR (index, RESOURCE, OPEN_WRITE,
                         ("Could not open the index: %s", error->message),
                         ("location=%s", location));
      stop_writer (index);
      GST_BASE_TRANSFORM_CLASS (gst_umgclip_index_parent_class)->stop (trans);
      return FALSE;
    }
  GST_INFO_OBJECT (index, "indexing into %s (%s)", location, umgclip_store_kind (index->store));
  index->stopping = FALSE;
  index->written = index->failed = 0;
  index->writer = g_thread_new ("umgclip-index", writer_main, index);
  return TRUE;
}

static gboolean
gst_umgclip_index_stop (GstBaseTransform *trans)
{
  GstUmgClipIndex *index = GST_UMGCLIP_INDEX (trans);
  /* the base waits for every job first: no row comes after it */
  gboolean ok = GST_BASE_TRANSFORM_CLASS (gst_umgclip_index_parent_class)->stop (trans);
  stop_writer (index);
  GST_INFO_OBJECT (index, "%" G_GUINT64_FORMAT " frames written, %" G_GUINT64_FORMAT " failed",
                   index->written, index->failed);
  return ok;
}

/* ---- properties ---- */

static void
gst_umgclip_index_set_property (GObject *object, guint prop_id, const GValue *value,
                                GParamSpec *pspec)
{
  GstUmgClipIndex *index = GST_UMGCLIP_INDEX (object);
  GST_OBJECT_LOCK (index);
  switch (prop_id)
    {
    case PROP_LOCATION:
      g_free (index->location);
      index->location = g_value_dup_string (value);
      break;
    case PROP_STREAM:
      g_free (index->stream);
      index->stream = g_value_dup_string (value);
      break;
    case PROP_THUMBNAILS:
      index->thumbnails = g_value_get_boolean (value);
      break;
    case PROP_THUMBNAIL_SIZE:
      index->thumbnail_size = g_value_get_uint (value);
      break;
    case PROP_COMMIT_FRAMES:
      index->commit_frames = g_value_get_uint (value);
      break;
    case PROP_REGIONS:
      index->regions = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
    }
  GST_OBJECT_UNLOCK (index);
}

static void
gst_umgclip_index_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstUmgClipIndex *index = GST_UMGCLIP_INDEX (object);
  GST_OBJECT_LOCK (index);
  switch (prop_id)
    {
    case PROP_LOCATION:
      g_value_set_string (value, index->location);
      break;
    case PROP_STREAM:
      g_value_set_string (value, index->stream);
      break;
    case PROP_THUMBNAILS:
      g_value_set_boolean (value, index->thumbnails);
      break;
    case PROP_THUMBNAIL_SIZE:
      g_value_set_uint (value, index->thumbnail_size);
      break;
    case PROP_COMMIT_FRAMES:
      g_value_set_uint (value, index->commit_frames);
      break;
    case PROP_REGIONS:
      g_value_set_boolean (value, index->regions);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
    }
  GST_OBJECT_UNLOCK (index);
}

static void
gst_umgclip_index_finalize (GObject *object)
{
  GstUmgClipIndex *index = GST_UMGCLIP_INDEX (object);
  stop_writer (index);
  g_free (index->location);
  g_free (index->stream);
  g_mutex_clear (&index->lock);
  g_cond_clear (&index->cond);
  G_OBJECT_CLASS (gst_umgclip_index_parent_class)->finalize (object);
}

static void
gst_umgclip_index_init (GstUmgClipIndex *index)
{
  index->location = g_strdup (DEFAULT_LOCATION);
  index->stream = g_strdup (DEFAULT_STREAM);
  index->thumbnails = DEFAULT_THUMBNAILS;
  index->thumbnail_size = DEFAULT_THUMBNAIL_SIZE;
  index->commit_frames = DEFAULT_COMMIT_FRAMES;
  index->regions = DEFAULT_REGIONS;
  g_mutex_init (&index->lock);
  g_cond_init (&index->cond);
  g_queue_init (&index->rows);
}

static void
gst_umgclip_index_class_init (GstUmgClipIndexClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *transform_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstUmgClipFilterClass *filter_class = GST_UMGCLIP_FILTER_CLASS (klass);
  const GParamFlags flags = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;

  gobject_class->set_property = gst_umgclip_index_set_property;
  gobject_class->get_property = gst_umgclip_index_get_property;
  gobject_class->finalize = gst_umgclip_index_finalize;

  g_object_class_install_property (
      gobject_class, PROP_LOCATION,
      g_param_spec_string ("location", "Location",
                           "Where the index lives: a SQLite file (made when missing; several "
                           "pipelines may write one at once), or postgresql://HOST[:PORT]/DB for "
                           "PostgreSQL with pgvector (schema made when missing)",
                           DEFAULT_LOCATION, flags | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      gobject_class, PROP_STREAM,
      g_param_spec_string ("stream", "Stream",
                           "Name of the stream in the index (a camera's name); default: the "
                           "upstream URI, else the stream-id",
                           DEFAULT_STREAM, flags | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      gobject_class, PROP_THUMBNAILS,
      g_param_spec_boolean ("thumbnails", "Thumbnails",
                            "Store a small JPEG of every indexed frame, for umgclip search "
                            "--thumbnails",
                            DEFAULT_THUMBNAILS, flags | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      gobject_class, PROP_THUMBNAIL_SIZE,
      g_param_spec_uint ("thumbnail-size", "Thumbnail size", "Longer side of thumbnails, pixels",
                         16, 4096, DEFAULT_THUMBNAIL_SIZE, flags | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      gobject_class, PROP_COMMIT_FRAMES,
      g_param_spec_uint ("commit-frames", "Commit frames",
                         "Frames per transaction (and after half a second without frames): a "
                         "killed pipeline loses at most that many",
                         1, 100000, DEFAULT_COMMIT_FRAMES, flags | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (
      gobject_class, PROP_REGIONS,
      g_param_spec_boolean ("regions", "Regions",
                            "Also store the regions umgcliptag tagged upstream (box, best tag, "
                            "ranked tags and a RoI-Align embedding on the dense map)",
                            DEFAULT_REGIONS, flags | GST_PARAM_MUTABLE_READY));

  gst_element_class_set_static_metadata (
      element_class, "UMG-CLIP index", "Filter/Analyzer/Video",
      "Stores every analysed frame's embedding, stream, pts and wall time (and the regions "
      "umgcliptag tagged) in an index that umgclip search queries by text; video passes "
      "through unchanged",
      "gst-umgclip authors");

  transform_class->start = GST_DEBUG_FUNCPTR (gst_umgclip_index_start);
  transform_class->stop = GST_DEBUG_FUNCPTR (gst_umgclip_index_stop);
  filter_class->needs_labels = FALSE;
  filter_class->wants_dense = gst_umgclip_index_wants_dense;
  filter_class->infer = gst_umgclip_index_infer;
}
