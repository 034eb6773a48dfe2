/* umgclipjson: turns the metadata of each frame (regions with tags, panoptic segments, the
 * embedding, active alerts) into one JSON object in gvametaconvert's layout, built with
 * json-glib, and publishes it as gvametapublish does: to a file, standard output, the bus or an
 * MQTT broker (gstumgclipmqtt.c). */
#include "gstumgclipjson.h"
#include "gstumgclipmqtt.h"
#include "umgclipmeta.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include <string.h>

#include <glib/gstdio.h>
#include <gst/video/video.h>
#include <json-glib/json-glib.h>

GST_DEBUG_CATEGORY_STATIC (gst_umgclip_json_debug);
#define GST_CAT_DEFAULT gst_umgclip_json_debug

#define DEFAULT_LOCATION NULL
#define DEFAULT_PRINT FALSE
#define DEFAULT_POST_MESSAGES FALSE
#define DEFAULT_INCLUDE_EMBEDDING FALSE
#define DEFAULT_METHOD GST_UMGCLIP_JSON_METHOD_FILE
#define DEFAULT_ADDRESS "localhost:1883"
#define DEFAULT_TOPIC "umgclip"
#define DEFAULT_CLIENT_ID NULL
#define DEFAULT_MAX_QUEUED 1000
#define DEFAULT_MAX_RECONNECT_INTERVAL 30
/* How long EOS waits for the broker to acknowledge what is queued. */
#define EOS_FLUSH_US (5 * G_USEC_PER_SEC)

typedef enum
{
  GST_UMGCLIP_JSON_METHOD_FILE,
  GST_UMGCLIP_JSON_METHOD_STDOUT,
  GST_UMGCLIP_JSON_METHOD_MESSAGE,
  GST_UMGCLIP_JSON_METHOD_MQTT,
} GstUmgClipJsonMethod;

#define GST_TYPE_UMGCLIP_JSON_METHOD (gst_umgclip_json_method_get_type ())
static GType
gst_umgclip_json_method_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_UMGCLIP_JSON_METHOD_FILE, "File: JSON Lines at location", "file" },
    { GST_UMGCLIP_JSON_METHOD_STDOUT, "Standard output, a line per frame", "stdout" },
    { GST_UMGCLIP_JSON_METHOD_MESSAGE, "Element messages \"umgclip-json\" on the bus", "message" },
    { GST_UMGCLIP_JSON_METHOD_MQTT, "MQTT: a message per frame to topic at address", "mqtt" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstUmgClipJsonMethod", values));
  return type;
}

/* Any raw video in any memory: only metadata is read. */
#define JSON_CAPS "video/x-raw(ANY)"

static GstStaticPadTemplate sink_template
    = GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (JSON_CAPS));
static GstStaticPadTemplate src_template
    = GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (JSON_CAPS));

enum
{
  PROP_0,
  PROP_LOCATION,
  PROP_PRINT,
  PROP_POST_MESSAGES,
  PROP_INCLUDE_EMBEDDING,
  PROP_METHOD,
  PROP_ADDRESS,
  PROP_TOPIC,
  PROP_CLIENT_ID,
  PROP_MAX_QUEUED,
  PROP_MAX_RECONNECT_INTERVAL,
  PROP_STATS,
};

struct _GstUmgClipJson
{
  GstBaseTransform parent;

  /* Properties, under the object lock. */
  gchar *location;
  gboolean print;
  gboolean post_messages;
  gboolean include_embedding;
  GstUmgClipJsonMethod method;
  gchar *address, *topic, *client_id;
  guint max_queued, max_reconnect_interval;

  /* Streaming state: set in start(), used from the streaming thread, released in stop(). */
  FILE *file;
  gchar *file_location;
  gint width, height;
  GstUmgClipMqtt *mqtt;
  gboolean warned_drop; /* a warning per outage */

  /* Counts for stats, under the object lock; kept after stop. */
  guint64 frames, lost_at_end;
  GstUmgClipMqttStats mqtt_stats;
};

G_DEFINE_TYPE_WITH_CODE (GstUmgClipJson, gst_umgclip_json, GST_TYPE_BASE_TRANSFORM,
                         GST_DEBUG_CATEGORY_INIT (gst_umgclip_json_debug, "umgclipjson", 0,
                                                  "umgclip JSON output"))
GST_ELEMENT_REGISTER_DEFINE (umgclipjson, "umgclipjson", GST_RANK_NONE, GST_TYPE_UMGCLIP_JSON)

/* ---- metadata to JSON ---- */

/* One "name": value member of the object being built. */
static void
member_int (JsonBuilder *builder, const gchar *name, gint64 value)
{
  json_builder_set_member_name (builder, name);
  json_builder_add_int_value (builder, value);
}

static void
member_double (JsonBuilder *builder, const gchar *name, gdouble value)
{
  json_builder_set_member_name (builder, name);
  json_builder_add_double_value (builder, value);
}

/* Region types are quarks, which GStreamer does not check for UTF-8 as it does structure
 * strings: bad bytes become U+FFFD, so that the line stays JSON. */
static void
member_string (JsonBuilder *builder, const gchar *name, const gchar *value)
{
  json_builder_set_member_name (builder, name);
  if (value == NULL || g_utf8_validate (value, -1, NULL))
    {
      json_builder_add_string_value (builder, value);
    }
  else
    {
      g_autofree gchar *valid = g_utf8_make_valid (value, -1);
      json_builder_add_string_value (builder, valid);
    }
}

static void
member_boolean (JsonBuilder *builder, const gchar *name, gboolean value)
{
  json_builder_set_member_name (builder, name);
  json_builder_add_boolean_value (builder, value);
}

/* DL Streamer's "detection" object. A detector's own "detection" param wins (its box, class and
 * confidence describe the object); without one the box comes from the ROI's pixels and the
 * class from the best umgclip tag, or from the ROI type when the region is untagged. */
static void
add_detection (JsonBuilder *builder, GstVideoRegionOfInterestMeta *roi, gint width, gint height)
{
  GstStructure *detection = gst_video_region_of_interest_meta_get_param (roi, "detection");
  GstStructure *tags = gst_video_region_of_interest_meta_get_param (roi, "umgclip");
  const gchar *corners[] = { "x_min", "y_min", "x_max", "y_max" };
  gdouble box[4], confidence, label_id;
  gboolean have_box = TRUE;
  const GstStructure *class_source;
  const gchar *label;

  for (guint i = 0; i < 4; i++)
    have_box = have_box && gst_umgclip_structure_get_number (detection, corners[i], &box[i]);
  if (!have_box)
    {
      box[0] = width > 0 ? (gdouble) roi->x / width : 0;
      box[1] = height > 0 ? (gdouble) roi->y / height : 0;
      box[2] = width > 0 ? (gdouble) (roi->x + roi->w) / width : 0;
      box[3] = height > 0 ? (gdouble) (roi->y + roi->h) / height : 0;
    }

  class_source
      = detection != NULL && gst_structure_has_field (detection, "label") ? detection : tags;
  label = class_source != NULL ? gst_structure_get_string (class_source, "label") : NULL;
  if (label == NULL)
    {
      class_source = NULL;
      label = roi->roi_type != 0 ? g_quark_to_string (roi->roi_type) : "";
    }

  json_builder_set_member_name (builder, "detection");
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "bounding_box");
  json_builder_begin_object (builder);
  for (guint i = 0; i < 4; i++)
    {
      json_builder_set_member_name (builder, corners[i]);
      json_builder_add_double_value (builder, box[i]);
    }
  json_builder_end_object (builder);
  if (gst_umgclip_structure_get_number (class_source != NULL ? class_source : detection,
                                        "confidence", &confidence))
    {
      member_double (builder, "confidence", confidence);
    }
  member_string (builder, "label", label);
  if (gst_umgclip_structure_get_number (class_source, "label_id", &label_id))
    {
      member_int (builder, "label_id", (gint64) label_id);
    }
  json_builder_end_object (builder);
}

/* "tags": the ranked umgclip tags, best first, as [{"label", "score"}]. */
static void
add_tags (JsonBuilder *builder, GstVideoRegionOfInterestMeta *roi)
{
  GstStructure *params = gst_video_region_of_interest_meta_get_param (roi, "umgclip");
  const GValue *labels = params != NULL ? gst_structure_get_value (params, "tags") : NULL;
  const GValue *scores = params != NULL ? gst_structure_get_value (params, "scores") : NULL;
  guint n = 0;

  if (labels != NULL && scores != NULL && GST_VALUE_HOLDS_ARRAY (labels)
      && GST_VALUE_HOLDS_ARRAY (scores))
    n = MIN (gst_value_array_get_size (labels), gst_value_array_get_size (scores));

  json_builder_set_member_name (builder, "tags");
  json_builder_begin_array (builder);
  for (guint i = 0; i < n; i++)
    {
      const GValue *label = gst_value_array_get_value (labels, i);
      const GValue *score = gst_value_array_get_value (scores, i);
      if (!G_VALUE_HOLDS_STRING (label) || !G_VALUE_HOLDS_DOUBLE (score))
        continue;
      json_builder_begin_object (builder);
      member_string (builder, "label", g_value_get_string (label));
      member_double (builder, "score", g_value_get_double (score));
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
}

static gint
compare_roi_ids (gconstpointer a, gconstpointer b)
{
  const GstVideoRegionOfInterestMeta *first = *(GstVideoRegionOfInterestMeta *const *) a;
  const GstVideoRegionOfInterestMeta *second = *(GstVideoRegionOfInterestMeta *const *) b;
  return (first->id > second->id) - (first->id < second->id);
}

static void
add_objects (JsonBuilder *builder, GstBuffer *buffer, gint width, gint height)
{
  g_autoptr (GPtrArray) regions = g_ptr_array_new ();
  gpointer state = NULL;
  GstMeta *meta;

  while ((meta = gst_buffer_iterate_meta_filtered (buffer, &state,
                                                   GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))
         != NULL)
    g_ptr_array_add (regions, meta);
  /* Metas iterate newest first; ids give the order applications enumerate them in. */
  g_ptr_array_sort (regions, compare_roi_ids);

  json_builder_set_member_name (builder, "objects");
  json_builder_begin_array (builder);
  for (guint i = 0; i < regions->len; i++)
    {
      GstVideoRegionOfInterestMeta *roi = g_ptr_array_index (regions, i);
      json_builder_begin_object (builder);
      add_detection (builder, roi, width, height);
      member_int (builder, "x", roi->x);
      member_int (builder, "y", roi->y);
      member_int (builder, "w", roi->w);
      member_int (builder, "h", roi->h);
      member_string (builder, "roi_type",
                     roi->roi_type != 0 ? g_quark_to_string (roi->roi_type) : "");
      member_int (builder, "id", roi->id);
      add_tags (builder, roi);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
}

static void
add_segments (JsonBuilder *builder, const GstUmgClipSegmentationMeta *meta)
{
  const guint n_labels = meta->labels != NULL ? g_strv_length (meta->labels) : 0;
  json_builder_set_member_name (builder, "segments");
  json_builder_begin_array (builder);
  for (guint i = 0; meta->segments != NULL && i < meta->segments->len; i++)
    {
      const GstUmgClipSegment *segment = &g_array_index (meta->segments, GstUmgClipSegment, i);
      json_builder_begin_object (builder);
      member_int (builder, "id", segment->id);
      member_string (builder, "label",
                     segment->label_id < n_labels ? meta->labels[segment->label_id] : "");
      member_int (builder, "label_id", segment->label_id);
      member_double (builder, "score", segment->score);
      member_boolean (builder, "is_thing", segment->is_thing);
      member_int (builder, "x", segment->x);
      member_int (builder, "y", segment->y);
      member_int (builder, "w", segment->w);
      member_int (builder, "h", segment->h);
      member_int (builder, "area", segment->area);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
}

static void
add_embedding (JsonBuilder *builder, const GstUmgClipEmbeddingMeta *meta, gboolean with_vector)
{
  json_builder_set_member_name (builder, "embedding");
  json_builder_begin_object (builder);
  member_string (builder, "model", meta->model != NULL ? meta->model : "");
  member_int (builder, "dim", meta->dim);
  if (with_vector)
    {
      json_builder_set_member_name (builder, "vector");
      json_builder_begin_array (builder);
      for (guint i = 0; i < meta->dim; i++)
        json_builder_add_double_value (builder, meta->embedding[i]);
      json_builder_end_array (builder);
    }
  json_builder_end_object (builder);
}

/* The active alerts (umgclipalert): [{"query", "score", "since", "stream"}]. */
static void
add_alerts (JsonBuilder *builder, GstCustomMeta *meta)
{
  GstStructure *structure = gst_custom_meta_get_structure (meta);
  const GValue *alerts = gst_structure_get_value (structure, "alerts");
  const gchar *stream = gst_structure_get_string (structure, "stream");

  json_builder_set_member_name (builder, "alerts");
  json_builder_begin_array (builder);
  /* the meta comes from upstream: fields of another type are skipped, not a critical */
  if (alerts != NULL && !GST_VALUE_HOLDS_ARRAY (alerts))
    alerts = NULL;
  for (guint i = 0; alerts != NULL && i < gst_value_array_get_size (alerts); i++)
    {
      const GValue *item = gst_value_array_get_value (alerts, i);
      const GstStructure *alert;
      gdouble score = 0;
      guint64 since = GST_CLOCK_TIME_NONE;
      if (!GST_VALUE_HOLDS_STRUCTURE (item))
        continue;
      alert = gst_value_get_structure (item);
      json_builder_begin_object (builder);
      member_string (builder, "query", gst_structure_get_string (alert, "query"));
      gst_structure_get_double (alert, "score", &score);
      member_double (builder, "score", score);
      if (gst_structure_get_uint64 (alert, "since", &since) && GST_CLOCK_TIME_IS_VALID (since))
        member_int (builder, "since", (gint64) since);
      member_string (builder, "stream", stream != NULL ? stream : "");
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
}

/* One line of JSON for buffer. "objects" is always present (possibly empty), "segments" and
 * "embedding" and "alerts" only when the buffer has that metadata; "timestamp" is the stream time
 * in nanoseconds, left out for buffers without a timestamp. */
static gchar *
frame_to_json (GstBuffer *buffer, gint width, gint height, GstClockTime timestamp,
               gboolean include_embedding)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  GstUmgClipSegmentationMeta *segmentation = gst_buffer_get_umgclip_segmentation_meta (buffer);
  GstUmgClipEmbeddingMeta *embedding = gst_buffer_get_umgclip_embedding_meta (buffer);
  GstCustomMeta *alerts = gst_buffer_get_custom_meta (buffer, GST_UMGCLIP_ALERTS_CUSTOM_META_NAME);

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "resolution");
  json_builder_begin_object (builder);
  member_int (builder, "width", width);
  member_int (builder, "height", height);
  json_builder_end_object (builder);
  if (GST_CLOCK_TIME_IS_VALID (timestamp))
    {
      member_int (builder, "timestamp", (gint64) timestamp);
    }
  add_objects (builder, buffer, width, height);
  if (segmentation != NULL)
    add_segments (builder, segmentation);
  if (embedding != NULL)
    add_embedding (builder, embedding, include_embedding);
  if (alerts != NULL)
    add_alerts (builder, alerts);
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  return json_generator_to_data (generator, NULL);
}

/* ---- the element ---- */

static gboolean
gst_umgclip_json_start (GstBaseTransform *trans)
{
  GstUmgClipJson *self = GST_UMGCLIP_JSON (trans);
  g_autofree gchar *location = NULL, *address = NULL, *topic = NULL, *client_id = NULL;
  GstUmgClipJsonMethod method;
  guint max_queued, max_reconnect;

  GST_OBJECT_LOCK (self);
  location = g_strdup (self->location);
  method = self->method;
  address = g_strdup (self->address);
  topic = g_strdup (self->topic);
  client_id = g_strdup (self->client_id);
  max_queued = self->max_queued;
  max_reconnect = self->max_reconnect_interval;
  self->frames = self->lost_at_end = 0;
  memset (&self->mqtt_stats, 0, sizeof self->mqtt_stats);
  GST_OBJECT_UNLOCK (self);

  self->width = self->height = 0;
  self->warned_drop = FALSE;
  if (method == GST_UMGCLIP_JSON_METHOD_MQTT)
    {
      g_autoptr (GError) error = NULL;
      if (client_id == NULL || *client_id == '\0')
        {
          g_free (client_id);
          client_id
              = g_strdup_printf ("umgclipjson-%d-%s", (gint) getpid (), GST_OBJECT_NAME (self));
        }
      self->mqtt
          = gst_umgclip_mqtt_new (address, client_id, topic, max_queued, max_reconnect, &error);
      if (self->mqtt == NULL)
        {
          GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("%s", error->message),
                             ("method=mqtt address=%s topic=%s", address, topic));
          return FALSE;
        }
      GST_INFO_OBJECT (self, "publishing to %s, topic %s, as %s", address, topic, client_id);
    }
  if (location == NULL || location[0] == '\0')
    {
      if (method == GST_UMGCLIP_JSON_METHOD_FILE)
        GST_DEBUG_OBJECT (self, "method=file without a location: no file");
      return TRUE;
    }
  if (method != GST_UMGCLIP_JSON_METHOD_FILE)
    return TRUE;
  self->file = g_fopen (location, "w");
  if (self->file == NULL)
    {
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
                         ("Could not open JSON output file \"%s\" for writing.", location),
                         ("%s", g_strerror (errno)));
      return FALSE;
    }
  self->file_location = g_steal_pointer (&location);
  return TRUE;
}

/* Takes the publisher's counts into the element's (they outlive it). */
static void
update_mqtt_stats (GstUmgClipJson *self)
{
  GstUmgClipMqttStats stats;
  if (self->mqtt == NULL)
    return;
  gst_umgclip_mqtt_get_stats (self->mqtt, &stats);
  GST_OBJECT_LOCK (self);
  self->mqtt_stats = stats;
  GST_OBJECT_UNLOCK (self);
}

static void
stop_mqtt (GstUmgClipJson *self)
{
  if (self->mqtt == NULL)
    return;
  update_mqtt_stats (self);
  GST_OBJECT_LOCK (self);
  /* what the broker never acknowledged is lost with the connection */
  self->lost_at_end = self->mqtt_stats.queued;
  self->mqtt_stats.queued = 0;
  GST_OBJECT_UNLOCK (self);
  if (self->lost_at_end > 0)
    GST_ELEMENT_WARNING (self, RESOURCE, WRITE,
                         ("%" G_GUINT64_FORMAT " MQTT messages were never acknowledged by the "
                          "broker and are lost",
                          self->lost_at_end),
                         (NULL));
  g_clear_pointer (&self->mqtt, gst_umgclip_mqtt_free);
}

static gboolean
close_file (GstUmgClipJson *self)
{
  gboolean ok = TRUE;
  if (self->file == NULL)
    return TRUE;
  if (fclose (self->file) != 0)
    {
      GST_ELEMENT_ERROR (self, RESOURCE, CLOSE,
                         ("Could not finish JSON output file \"%s\".", self->file_location),
                         ("%s", g_strerror (errno)));
      ok = FALSE;
    }
  self->file = NULL;
  g_clear_pointer (&self->file_location, g_free);
  return ok;
}

static gboolean
gst_umgclip_json_stop (GstBaseTransform *trans)
{
  stop_mqtt (GST_UMGCLIP_JSON (trans));
  return close_file (GST_UMGCLIP_JSON (trans));
}

static gboolean
gst_umgclip_json_set_caps (GstBaseTransform *trans, GstCaps *incaps, GstCaps *outcaps)
{
  GstUmgClipJson *self = GST_UMGCLIP_JSON (trans);
  GstStructure *structure = gst_caps_get_structure (incaps, 0);
  /* Only the size is needed; reading it directly also works for formats GstVideoInfo does
   * not know. */
  if (!gst_structure_get_int (structure, "width", &self->width)
      || !gst_structure_get_int (structure, "height", &self->height))
    self->width = self->height = 0;
  return TRUE;
}

static gboolean
gst_umgclip_json_sink_event (GstBaseTransform *trans, GstEvent *event)
{
  GstUmgClipJson *self = GST_UMGCLIP_JSON (trans);
  /* Whoever waits for EOS may read the file next, before the pipeline is stopped. */
  if (GST_EVENT_TYPE (event) == GST_EVENT_EOS && self->file != NULL && fflush (self->file) != 0)
    GST_ELEMENT_WARNING (self, RESOURCE, WRITE,
                         ("Could not write JSON output file \"%s\".", self->file_location),
                         ("%s", g_strerror (errno)));
  /* and so is every message the broker has: waited for, a while */
  if (GST_EVENT_TYPE (event) == GST_EVENT_EOS && self->mqtt != NULL)
    {
      if (!gst_umgclip_mqtt_flush (self->mqtt, EOS_FLUSH_US))
        GST_WARNING_OBJECT (self, "the broker did not acknowledge every message by EOS");
      update_mqtt_stats (self);
    }
  return GST_BASE_TRANSFORM_CLASS (gst_umgclip_json_parent_class)->sink_event (trans, event);
}

static GstFlowReturn
gst_umgclip_json_transform_ip (GstBaseTransform *trans, GstBuffer *buffer)
{
  GstUmgClipJson *self = GST_UMGCLIP_JSON (trans);
  gboolean print, post_messages, include_embedding;
  GstClockTime timestamp = GST_BUFFER_PTS (buffer);
  g_autofree gchar *json = NULL;

  GST_OBJECT_LOCK (self);
  print = self->print || self->method == GST_UMGCLIP_JSON_METHOD_STDOUT;
  post_messages = self->post_messages || self->method == GST_UMGCLIP_JSON_METHOD_MESSAGE;
  include_embedding = self->include_embedding;
  self->frames++;
  GST_OBJECT_UNLOCK (self);

  if (self->file == NULL && self->mqtt == NULL && !print && !post_messages)
    return GST_FLOW_OK;

  if (GST_CLOCK_TIME_IS_VALID (timestamp) && trans->segment.format == GST_FORMAT_TIME)
    timestamp = gst_segment_to_stream_time (&trans->segment, GST_FORMAT_TIME, timestamp);
  json = frame_to_json (buffer, self->width, self->height, timestamp, include_embedding);

  if (self->file != NULL && (fputs (json, self->file) < 0 || fputc ('\n', self->file) == EOF))
    {
      GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
                         ("Could not write JSON output file \"%s\".", self->file_location),
                         ("%s", g_strerror (errno)));
      return GST_FLOW_ERROR;
    }
  if (print)
    {
      /* Line by line, so that a consumer reading a pipe sees each frame as it passes. */
      fputs (json, stdout);
      fputc ('\n', stdout);
      fflush (stdout);
    }
  if (self->mqtt != NULL)
    {
      /* never waits: with the broker away the message is queued, or dropped and counted */
      if (gst_umgclip_mqtt_publish (self->mqtt, json))
        self->warned_drop = FALSE;
      else if (!self->warned_drop)
        {
          g_autofree gchar *why = gst_umgclip_mqtt_dup_last_error (self->mqtt);
          self->warned_drop = TRUE;
          GST_ELEMENT_WARNING (self, RESOURCE, WRITE,
                               ("MQTT broker away and the queue full: dropping messages (counted "
                                "in stats)"),
                               ("%s", why != NULL ? why : "not connected"));
        }
      update_mqtt_stats (self);
    }
  if (post_messages)
    gst_element_post_message (
        GST_ELEMENT (self),
        gst_message_new_element (GST_OBJECT (self), gst_structure_new ("umgclip-json", "json",
                                                                       G_TYPE_STRING, json, NULL)));
  return GST_FLOW_OK;
}

static void
gst_umgclip_json_set_property (GObject *object, guint prop_id, const GValue *value,
                               GParamSpec *pspec)
{
  GstUmgClipJson *self = GST_UMGCLIP_JSON (object);
  GST_OBJECT_LOCK (self);
  switch (prop_id)
    {
    case PROP_LOCATION:
      g_free (self->location);
      self->location = g_value_dup_string (value);
      break;
    case PROP_PRINT:
      self->print = g_value_get_boolean (value);
      break;
    case PROP_POST_MESSAGES:
      self->post_messages = g_value_get_boolean (value);
      break;
    case PROP_INCLUDE_EMBEDDING:
      self->include_embedding = g_value_get_boolean (value);
      break;
    case PROP_METHOD:
      self->method = g_value_get_enum (value);
      break;
    case PROP_ADDRESS:
      g_free (self->address);
      self->address = g_value_dup_string (value);
      break;
    case PROP_TOPIC:
      g_free (self->topic);
      self->topic = g_value_dup_string (value);
      break;
    case PROP_CLIENT_ID:
      g_free (self->client_id);
      self->client_id = g_value_dup_string (value);
      break;
    case PROP_MAX_QUEUED:
      self->max_queued = g_value_get_uint (value);
      break;
    case PROP_MAX_RECONNECT_INTERVAL:
      self->max_reconnect_interval = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
    }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_umgclip_json_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstUmgClipJson *self = GST_UMGCLIP_JSON (object);
  GST_OBJECT_LOCK (self);
  switch (prop_id)
    {
    case PROP_LOCATION:
      g_value_set_string (value, self->location);
      break;
    case PROP_PRINT:
      g_value_set_boolean (value, self->print);
      break;
    case PROP_POST_MESSAGES:
      g_value_set_boolean (value, self->post_messages);
      break;
    case PROP_INCLUDE_EMBEDDING:
      g_value_set_boolean (value, self->include_embedding);
      break;
    case PROP_METHOD:
      g_value_set_enum (value, self->method);
      break;
    case PROP_ADDRESS:
      g_value_set_string (value, self->address);
      break;
    case PROP_TOPIC:
      g_value_set_string (value, self->topic);
      break;
    case PROP_CLIENT_ID:
      g_value_set_string (value, self->client_id);
      break;
    case PROP_MAX_QUEUED:
      g_value_set_uint (value, self->max_queued);
      break;
    case PROP_MAX_RECONNECT_INTERVAL:
      g_value_set_uint (value, self->max_reconnect_interval);
      break;
    case PROP_STATS:
      g_value_take_boxed (
          value,
          gst_structure_new (
              "umgclipjson-stats", "method", G_TYPE_STRING,
              g_enum_get_value (g_type_class_peek (GST_TYPE_UMGCLIP_JSON_METHOD), self->method)
                  ->value_nick,
              "frames", G_TYPE_UINT64, self->frames, "published", G_TYPE_UINT64,
              self->mqtt_stats.published, "dropped", G_TYPE_UINT64,
              self->mqtt_stats.dropped + self->lost_at_end, "queued", G_TYPE_UINT,
              self->mqtt_stats.queued, "connected", G_TYPE_BOOLEAN, self->mqtt_stats.connected,
              "connections", G_TYPE_UINT64, self->mqtt_stats.connections, NULL));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
    }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_umgclip_json_finalize (GObject *object)
{
  GstUmgClipJson *self = GST_UMGCLIP_JSON (object);
  g_free (self->location);
  g_free (self->file_location);
  g_free (self->address);
  g_free (self->topic);
  g_free (self->client_id);
  g_clear_pointer (&self->mqtt, gst_umgclip_mqtt_free);
  if (self->file != NULL)
    fclose (self->file);
  G_OBJECT_CLASS (gst_umgclip_json_parent_class)->finalize (object);
}

static void
gst_umgclip_json_init (GstUmgClipJson *self)
{
  self->location = g_strdup (DEFAULT_LOCATION);
  self->print = DEFAULT_PRINT;
  self->post_messages = DEFAULT_POST_MESSAGES;
  self->include_embedding = DEFAULT_INCLUDE_EMBEDDING;
  self->method = DEFAULT_METHOD;
  self->address = g_strdup (DEFAULT_ADDRESS);
  self->topic = g_strdup (DEFAULT_TOPIC);
  self->client_id = g_strdup (DEFAULT_CLIENT_ID);
  self->max_queued = DEFAULT_MAX_QUEUED;
  self->max_reconnect_interval = DEFAULT_MAX_RECONNECT_INTERVAL;
  /* Video passes untouched; transform_ip still sees every buffer. */
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), TRUE);
}

static void
gst_umgclip_json_class_init (GstUmgClipJsonClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *transform_class = GST_BASE_TRANSFORM_CLASS (klass);
  const GParamFlags flags = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING;

  gobject_class->set_property = gst_umgclip_json_set_property;
  gobject_class->get_property = gst_umgclip_json_get_property;
  gobject_class->finalize = gst_umgclip_json_finalize;

  g_object_class_install_property (
      gobject_class, PROP_LOCATION,
      g_param_spec_string ("location", "Output file",
                           "File to write, one JSON object per frame and line (JSON Lines); "
                           "replaced when the element starts. Empty: no file",
                           DEFAULT_LOCATION,
                           G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      gobject_class, PROP_PRINT,
      g_param_spec_boolean ("print", "Print",
                            "Also write each frame's JSON object as one line to standard output",
                            DEFAULT_PRINT, flags));
  g_object_class_install_property (
      gobject_class, PROP_POST_MESSAGES,
      g_param_spec_boolean ("post-messages", "Post messages",
                            "Post each frame's JSON object on the bus as an element message "
                            "named \"umgclip-json\" with the text in its \"json\" field",
                            DEFAULT_POST_MESSAGES, flags));
  g_object_class_install_property (
      gobject_class, PROP_INCLUDE_EMBEDDING,
      g_param_spec_boolean ("include-embedding", "Include embedding",
                            "Write the image embedding vector of umgclipenc (\"embedding\": "
                            "{\"vector\": [...]}), not only its model and dimension",
                            DEFAULT_INCLUDE_EMBEDDING, flags));
  g_object_class_install_property (
      gobject_class, PROP_METHOD,
      g_param_spec_enum ("method", "Method",
                         "Where each frame's JSON goes (gvametapublish's names): file (location), "
                         "stdout, message (the bus) or mqtt (topic at address). print and "
                         "post-messages add standard output and the bus to any method",
                         GST_TYPE_UMGCLIP_JSON_METHOD, DEFAULT_METHOD,
                         G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      gobject_class, PROP_ADDRESS,
      g_param_spec_string ("address", "Address",
                           "MQTT broker as HOST:PORT (method=mqtt). A broker that is away at "
                           "start or goes away is reconnected to; the stream never waits for it",
                           DEFAULT_ADDRESS,
                           G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      gobject_class, PROP_TOPIC,
      g_param_spec_string ("topic", "Topic", "MQTT topic a frame's message goes to (QoS 1)",
                           DEFAULT_TOPIC,
                           G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      gobject_class, PROP_CLIENT_ID,
      g_param_spec_string ("mqtt-client-id", "MQTT client id",
                           "Client id at the broker; default: umgclipjson-PID-NAME",
                           DEFAULT_CLIENT_ID,
                           G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      gobject_class, PROP_MAX_QUEUED,
      g_param_spec_uint ("max-queued", "Max queued",
                         "MQTT messages kept until the broker acknowledges them (sent, or "
                         "waiting while it is away); beyond this new messages are dropped and "
                         "counted in stats",
                         1, G_MAXINT, DEFAULT_MAX_QUEUED,
                         G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      gobject_class, PROP_MAX_RECONNECT_INTERVAL,
      g_param_spec_uint ("max-reconnect-interval", "Max reconnect interval",
                         "Seconds between attempts to reach the MQTT broker at most (from 1 s, "
                         "doubling)",
                         1, 3600, DEFAULT_MAX_RECONNECT_INTERVAL,
                         G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
                          "umgclipjson-stats: method, frames, and for mqtt published "
                          "(acknowledged), dropped (no room while the broker was away, or never "
                          "acknowledged at the end), queued, connected, connections",
                          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (
      element_class, "UMG-CLIP JSON output", "Filter/Analyzer/Video",
      "Writes the umgclip metadata of every frame (regions and their tags, panoptic segments, "
      "the embedding) as one JSON object in DL Streamer's gvametaconvert layout, to a file, to "
      "standard output or as element messages; video passes through unchanged",
      "gst-umgclip authors");

  transform_class->start = gst_umgclip_json_start;
  transform_class->stop = gst_umgclip_json_stop;
  transform_class->set_caps = gst_umgclip_json_set_caps;
  transform_class->sink_event = gst_umgclip_json_sink_event;
  transform_class->transform_ip = gst_umgclip_json_transform_ip;
}
