/* umgclipalert: the scores are computed on the inference thread (infer: the cosine of the
 * frame's embedding with each query's), the alerts' states change on the streaming thread
 * (apply, once per new result, in frame order), which posts the messages and puts the active
 * alerts on every frame. */
#include "gstumgclipalert.h"

#include "umgclipmeta.h"

GST_DEBUG_CATEGORY_STATIC (gst_umgclip_alert_debug);
#define GST_CAT_DEFAULT gst_umgclip_alert_debug

#define DEFAULT_THRESHOLD 0.25
#define DEFAULT_HOLD 0
#define DEFAULT_STREAM NULL
/* Queries are encoded as written: "smoke", "a red truck". */
#define ALERT_PROMPT_TEMPLATE "{}"

enum
{
  PROP_0,
  PROP_QUERIES,
  PROP_THRESHOLD,
  PROP_HOLD,
  PROP_STREAM,
};

/* One query's alert, streaming thread only. */
typedef struct
{
  gboolean active;
  GstClockTime since;   /* where the active state began */
  GstClockTime pending; /* where the score first crossed back, NONE when it has not */
  gdouble pending_score;
  gdouble score; /* the latest */
  gboolean seen; /* in the latest result's queries */
} Alert;

/* A result: every query's score for one frame. */
typedef struct
{
  GstUmgClipLabels *queries;
  gdouble *scores;
  GstClockTime pts;
  guint serial; /* tells one result from the next */
  gdouble threshold;
  GstClockTime hold;
} Scores;

struct _GstUmgClipAlert
{
  GstUmgClipFilter parent;

  /* Properties, under the object lock. */
  gdouble threshold;
  GstClockTime hold;
  gchar *stream;

  /* Streaming thread. */
  GHashTable *alerts;              /* query -> Alert */
  gint serial;                     /* of the latest result, any thread (atomic) */
  guint last_serial;               /* the result the states were last moved by, 0 for none */
  GstClockTime last_pts, last_end; /* the latest frame's pts and end */
};

G_DEFINE_TYPE_WITH_CODE (GstUmgClipAlert, gst_umgclip_alert, GST_TYPE_UMGCLIP_FILTER,
                         GST_DEBUG_CATEGORY_INIT (gst_umgclip_alert_debug, "umgclipalert", 0,
                                                  "umgclip alerts on text queries"))
GST_ELEMENT_REGISTER_DEFINE (umgclipalert, "umgclipalert", GST_RANK_NONE, GST_TYPE_UMGCLIP_ALERT)

static void
scores_free (gpointer data)
{
  Scores *scores = data;
  gst_umgclip_labels_unref (scores->queries);
  g_free (scores->scores);
  g_free (scores);
}

/* On the inference thread: each query's cosine with the frame. */
static gboolean
gst_umgclip_alert_infer (GstUmgClipFilter *filter, UmgClipContext *context,
                         const GstUmgClipFrame *frame, const GstUmgClipFeatures *features,
                         GstUmgClipResult *result, GError **error)
{
  GstUmgClipAlert *alert = GST_UMGCLIP_ALERT (filter);
  GstUmgClipLabels *queries = gst_umgclip_filter_get_labels (filter, context, error);
  Scores *scores;

  if (queries == NULL)
    return FALSE;
  scores = g_new0 (Scores, 1);
  scores->queries = queries;
  scores->scores = g_new0 (gdouble, MAX (queries->n_labels, 1));
  scores->pts = frame->pts;
  scores->serial = (guint) g_atomic_int_add (&alert->serial, 1) + 1;
  GST_OBJECT_LOCK (alert);
  scores->threshold = alert->threshold;
  scores->hold = alert->hold;
  GST_OBJECT_UNLOCK (alert);
  for (guint q = 0; q < queries->n_labels; q++)
    {
      const gfloat *text = queries->embeddings + (gsize) q * queries->dim;
      gdouble dot = 0;
      for (guint i = 0; i < features->dim; i++)
        dot += (gdouble) features->embedding[i] * text[i];
      scores->scores[q] = dot;
    }
  result->data = scores;
  result->free_data = scores_free;
  return TRUE;
}

static gchar *
stream_name (GstUmgClipAlert *alert)
{
  gchar *stream;
  GST_OBJECT_LOCK (alert);
  stream = alert->stream != NULL && *alert->stream != '\0' ? g_strdup (alert->stream) : NULL;
  GST_OBJECT_UNLOCK (alert);
  return stream != NULL ? stream : gst_umgclip_filter_dup_stream_name (GST_UMGCLIP_FILTER (alert));
}

static void
post (GstUmgClipAlert *alert, const gchar *query, gboolean begin, gdouble score, GstClockTime pts,
      const gchar *reason)
{
  g_autofree gchar *stream = stream_name (alert);
  GstStructure *structure
      = gst_structure_new ("umgclip-alert", "query", G_TYPE_STRING, query, "state", G_TYPE_STRING,
                           begin ? "begin" : "end", "score", G_TYPE_DOUBLE, score, "pts",
                           G_TYPE_UINT64, (guint64) pts, "stream", G_TYPE_STRING, stream, NULL);
  if (reason != NULL)
    gst_structure_set (structure, "reason", G_TYPE_STRING, reason, NULL);
  GST_INFO_OBJECT (alert, "%s: %s at %" GST_TIME_FORMAT " (score %.3f)", query,
                   begin ? "begin" : "end", GST_TIME_ARGS (pts), score);
  gst_element_post_message (GST_ELEMENT (alert),
                            gst_message_new_element (GST_OBJECT (alert), structure));
}

/* Ends every active alert (end of stream, flush, stop, a query removed): pts is where. */
static void
end_active (GstUmgClipAlert *alert, const gchar *reason)
{
  GHashTableIter iter;
  gpointer key, value;

  g_hash_table_iter_init (&iter, alert->alerts);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      Alert *state = value;
      if (state->active)
        post (alert, key, FALSE, state->score,
              GST_CLOCK_TIME_IS_VALID (alert->last_end) ? alert->last_end : alert->last_pts,
              reason);
    }
  g_hash_table_remove_all (alert->alerts);
  alert->last_serial = 0;
}

/* One new result moves every query's state: a change of state is posted once the score has
 * stayed on its new side of the threshold for hold, at the pts where it crossed. */
static void
advance (GstUmgClipAlert *alert, const Scores *scores)
{
  GHashTableIter iter;
  gpointer key, value;
  GstClockTime pts = scores->pts;

  g_hash_table_iter_init (&iter, alert->alerts);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    ((Alert *) value)->seen = FALSE;
  for (guint q = 0; q < scores->queries->n_labels; q++)
    {
      const gchar *query = scores->queries->labels[q];
      gdouble score = scores->scores[q];
      gboolean above = score >= scores->threshold;
      Alert *state = g_hash_table_lookup (alert->alerts, query);

      if (state == NULL)
        {
          state = g_new0 (Alert, 1);
          state->since = state->pending = GST_CLOCK_TIME_NONE;
          g_hash_table_insert (alert->alerts, g_strdup (query), state);
        }
      state->seen = TRUE;
      state->score = score;
      if (above == state->active)
        {
          state->pending = GST_CLOCK_TIME_NONE;
          continue;
        }
      if (!GST_CLOCK_TIME_IS_VALID (state->pending))
        {
          state->pending = pts;
          state->pending_score = score;
        }
      /* frames without a pts cannot be timed: their changes are not held */
      if (!GST_CLOCK_TIME_IS_VALID (pts) || !GST_CLOCK_TIME_IS_VALID (state->pending)
          || pts - state->pending >= scores->hold)
        {
          state->active = above;
          state->since = above ? state->pending : GST_CLOCK_TIME_NONE;
          post (alert, query, above, above ? state->pending_score : score, state->pending, NULL);
          state->pending = GST_CLOCK_TIME_NONE;
        }
    }
  /* queries taken out while playing: their alerts end here */
  g_hash_table_iter_init (&iter, alert->alerts);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      Alert *state = value;
      if (state->seen)
        continue;
      if (state->active)
        post (alert, key, FALSE, state->score, pts, "query removed");
      g_hash_table_iter_remove (&iter);
    }
}

/* On the streaming thread, for every frame in order: a new result moves the states; the
 * active alerts go on the frame. */
static void
gst_umgclip_alert_apply (GstUmgClipFilter *filter, GstBuffer *buffer,
                         const GstUmgClipResult *result, gboolean own)
{
  GstUmgClipAlert *alert = GST_UMGCLIP_ALERT (filter);
  const Scores *scores = result->data;
  GstCustomMeta *meta = NULL;
  g_autofree gchar *stream = NULL;

  alert->last_pts = GST_BUFFER_PTS (buffer);
  alert->last_end = GST_BUFFER_PTS_IS_VALID (buffer) && GST_BUFFER_DURATION_IS_VALID (buffer)
                        ? GST_BUFFER_PTS (buffer) + GST_BUFFER_DURATION (buffer)
                        : GST_CLOCK_TIME_NONE;
  if (scores == NULL)
    return;
  if (scores->serial != alert->last_serial)
    {
      advance (alert, scores);
      alert->last_serial = scores->serial;
    }
  for (guint q = 0; q < scores->queries->n_labels; q++)
    {
      Alert *state = g_hash_table_lookup (alert->alerts, scores->queries->labels[q]);
      if (state == NULL || !state->active)
        continue;
      if (meta == NULL)
        {
          stream = stream_name (alert);
          meta = gst_buffer_add_umgclip_alerts_meta (buffer, stream);
        }
      gst_umgclip_alerts_meta_add (meta, scores->queries->labels[q], scores->scores[q],
                                   state->since, scores->pts);
    }
}

static gboolean
gst_umgclip_alert_sink_event (GstBaseTransform *trans, GstEvent *event)
{
  GstUmgClipAlert *alert = GST_UMGCLIP_ALERT (trans);

  /* frames still waiting are applied first; the alerts end before EOS goes on, so that the
   * messages come before the pipeline's EOS */
  if (GST_EVENT_TYPE (event) == GST_EVENT_EOS)
    {
      gst_umgclip_filter_drain (GST_UMGCLIP_FILTER (alert));
      end_active (alert, "end of stream");
    }
  else if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_STOP)
    end_active (alert, "flush");
  return GST_BASE_TRANSFORM_CLASS (gst_umgclip_alert_parent_class)->sink_event (trans, event);
}

static gboolean
gst_umgclip_alert_start (GstBaseTransform *trans)
{
  GstUmgClipAlert *alert = GST_UMGCLIP_ALERT (trans);
  g_hash_table_remove_all (alert->alerts);
  alert->last_serial = 0;
  alert->last_pts = alert->last_end = GST_CLOCK_TIME_NONE;
  return GST_BASE_TRANSFORM_CLASS (gst_umgclip_alert_parent_class)->start (trans);
}

static gboolean
gst_umgclip_alert_stop (GstBaseTransform *trans)
{
  GstUmgClipAlert *alert = GST_UMGCLIP_ALERT (trans);
  gboolean ret = GST_BASE_TRANSFORM_CLASS (gst_umgclip_alert_parent_class)->stop (trans);
  end_active (alert, "stopped");
  return ret;
}

static void
gst_umgclip_alert_set_property (GObject *object, guint prop_id, const GValue *value,
                                GParamSpec *pspec)
{
  GstUmgClipAlert *alert = GST_UMGCLIP_ALERT (object);
  switch (prop_id)
    {
    case PROP_QUERIES:
      /* the base's label list, split at ';' for this element */
      g_object_set_property (object, "labels", value);
      return;
    case PROP_THRESHOLD:
      GST_OBJECT_LOCK (alert);
      alert->threshold = g_value_get_double (value);
      GST_OBJECT_UNLOCK (alert);
      return;
    case PROP_HOLD:
      GST_OBJECT_LOCK (alert);
      alert->hold = g_value_get_uint64 (value);
      GST_OBJECT_UNLOCK (alert);
      return;
    case PROP_STREAM:
      GST_OBJECT_LOCK (alert);
      g_free (alert->stream);
      alert->stream = g_value_dup_string (value);
      GST_OBJECT_UNLOCK (alert);
      return;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      return;
    }
}

static void
gst_umgclip_alert_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstUmgClipAlert *alert = GST_UMGCLIP_ALERT (object);
  switch (prop_id)
    {
    case PROP_QUERIES:
      g_object_get_property (object, "labels", value);
      return;
    case PROP_THRESHOLD:
      GST_OBJECT_LOCK (alert);
      g_value_set_double (value, alert->threshold);
      GST_OBJECT_UNLOCK (alert);
      return;
    case PROP_HOLD:
      GST_OBJECT_LOCK (alert);
      g_value_set_uint64 (value, alert->hold);
      GST_OBJECT_UNLOCK (alert);
      return;
    case PROP_STREAM:
      GST_OBJECT_LOCK (alert);
      g_value_set_string (value, alert->stream);
      GST_OBJECT_UNLOCK (alert);
      return;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      return;
    }
}

static void
gst_umgclip_alert_finalize (GObject *object)
{
  GstUmgClipAlert *alert = GST_UMGCLIP_ALERT (object);
  g_hash_table_unref (alert->alerts);
  g_free (alert->stream);
  G_OBJECT_CLASS (gst_umgclip_alert_parent_class)->finalize (object);
}

static void
gst_umgclip_alert_init (GstUmgClipAlert *alert)
{
  alert->threshold = DEFAULT_THRESHOLD;
  alert->hold = DEFAULT_HOLD;
  alert->stream = g_strdup (DEFAULT_STREAM);
  alert->alerts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  alert->last_pts = alert->last_end = GST_CLOCK_TIME_NONE;
  g_object_set (alert, "prompt-template", ALERT_PROMPT_TEMPLATE, NULL);
}

static void
gst_umgclip_alert_class_init (GstUmgClipAlertClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *transform_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstUmgClipFilterClass *filter_class = GST_UMGCLIP_FILTER_CLASS (klass);
  const GParamFlags flags = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING;

  gobject_class->set_property = gst_umgclip_alert_set_property;
  gobject_class->get_property = gst_umgclip_alert_get_property;
  gobject_class->finalize = gst_umgclip_alert_finalize;

  g_object_class_install_property (
      gobject_class, PROP_QUERIES,
      g_param_spec_string ("queries", "Queries",
                           "Texts to alert on, separated by ';' (\"smoke; a red truck\"), encoded "
                           "as written unless prompt-template says otherwise. The labels "
                           "property, split at ';'. Can be changed while playing: alerts of a "
                           "removed query end",
                           NULL, flags));
  /* the cosine of a frame with a query, not a probability: its own range and default */
  g_object_class_install_property (
      gobject_class, PROP_THRESHOLD,
      g_param_spec_double ("threshold", "Threshold",
                           "Score (the cosine of the frame's embedding with the query's) at or "
                           "above which a query's alert is active. Depends on the model: "
                           "OpenAI's CLIP scores matching captions at about 0.3",
                           -1.0, 1.0, DEFAULT_THRESHOLD, flags));
  g_object_class_install_property (
      gobject_class, PROP_HOLD,
      g_param_spec_uint64 ("hold", "Hold",
                           "Nanoseconds a score must stay on the other side of the threshold "
                           "before an alert begins or ends, against flicker; the change is "
                           "dated where it started. 0: every crossing",
                           0, G_MAXUINT64, DEFAULT_HOLD, flags));
  g_object_class_install_property (
      gobject_class, PROP_STREAM,
      g_param_spec_string ("stream", "Stream",
                           "Name of the stream in the alerts; default: the upstream URI, else "
                           "the stream-id",
                           DEFAULT_STREAM, flags));

  gst_element_class_set_static_metadata (
      element_class, "UMG-CLIP alerts", "Filter/Analyzer/Video",
      "Posts \"umgclip-alert\" element messages (query, state begin/end, score, pts, stream) "
      "when a frame's CLIP embedding starts or stops matching a text query, and attaches the "
      "active alerts to each frame (UmgClipAlerts); video passes through unchanged",
      "gst-umgclip authors");

  transform_class->start = GST_DEBUG_FUNCPTR (gst_umgclip_alert_start);
  transform_class->stop = GST_DEBUG_FUNCPTR (gst_umgclip_alert_stop);
  transform_class->sink_event = GST_DEBUG_FUNCPTR (gst_umgclip_alert_sink_event);
  filter_class->needs_labels = TRUE;
  filter_class->label_separators = ";";
  filter_class->infer = gst_umgclip_alert_infer;
  filter_class->apply = gst_umgclip_alert_apply;
}
