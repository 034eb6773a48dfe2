/* Registration, copying and scaling of the umgclip metadata (umgclipmeta.h), and the
 * structures written for language bindings (custom meta, ROI params). */
#include "umgclipmeta.h"

#include <stdlib.h>
#include <string.h>

/* ---- embedding meta ---- */

GType
gst_umgclip_embedding_meta_api_get_type (void)
{
  static GType type = 0;
  static const gchar *tags[] = { GST_META_TAG_VIDEO_STR, NULL };
  if (g_once_init_enter (&type))
    {
      GType api = gst_meta_api_type_register ("GstUmgClipEmbeddingMetaAPI", tags);
      g_once_init_leave (&type, api);
    }
  return type;
}

static gboolean
embedding_meta_init (GstMeta *meta, gpointer params, GstBuffer *buffer)
{
  GstUmgClipEmbeddingMeta *embedding = (GstUmgClipEmbeddingMeta *) meta;
  embedding->model = NULL;
  embedding->dim = 0;
  embedding->embedding = NULL;
  embedding->dense_mode = NULL;
  embedding->input_width = embedding->input_height = 0;
  embedding->grid_width = embedding->grid_height = 0;
  embedding->dense = NULL;
  embedding->source_pts = GST_CLOCK_TIME_NONE;
  return TRUE;
}

static void
embedding_meta_free (GstMeta *meta, GstBuffer *buffer)
{
  GstUmgClipEmbeddingMeta *embedding = (GstUmgClipEmbeddingMeta *) meta;
  g_free (embedding->model);
  g_free (embedding->embedding);
  g_free (embedding->dense_mode);
  g_free (embedding->dense);
}

/* The embedding describes the picture, not its pixel grid: every copy, conversion or scale
 * keeps it as it is. */
static gboolean
embedding_meta_transform (GstBuffer *dest, GstMeta *meta, GstBuffer *buffer, GQuark type,
                          gpointer data)
{
  GstUmgClipEmbeddingMeta *source = (GstUmgClipEmbeddingMeta *) meta;
  GstUmgClipEmbeddingMeta *copy
      = gst_buffer_add_umgclip_embedding_meta (dest, source->model, source->embedding, source->dim);
  if (copy == NULL)
    return FALSE;
  copy->source_pts = source->source_pts;
  if (source->dense != NULL)
    gst_umgclip_embedding_meta_set_dense (copy, source->dense_mode, source->input_width,
                                          source->input_height, source->grid_width,
                                          source->grid_height, source->dense);
  return TRUE;
}

const GstMetaInfo *
gst_umgclip_embedding_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;
  if (g_once_init_enter ((GstMetaInfo **) &info))
    {
      const GstMetaInfo *registered
          = gst_meta_register (GST_UMGCLIP_EMBEDDING_META_API_TYPE, "GstUmgClipEmbeddingMeta",
                               sizeof (GstUmgClipEmbeddingMeta), embedding_meta_init,
                               embedding_meta_free, embedding_meta_transform);
      g_once_init_leave ((GstMetaInfo **) &info, (GstMetaInfo *) registered);
    }
  return info;
}

GstUmgClipEmbeddingMeta *
gst_buffer_add_umgclip_embedding_meta (GstBuffer *buffer, const gchar *model,
                                       const gfloat *embedding, guint dim)
{
  GstUmgClipEmbeddingMeta *meta;
  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (embedding != NULL && dim > 0, NULL);

  meta = (GstUmgClipEmbeddingMeta *) gst_buffer_add_meta (buffer, GST_UMGCLIP_EMBEDDING_META_INFO,
                                                          NULL);
  meta->model = g_strdup (model);
  meta->dim = dim;
  meta->embedding = g_memdup2 (embedding, dim * sizeof (gfloat));
  return meta;
}

void
gst_umgclip_embedding_meta_set_dense (GstUmgClipEmbeddingMeta *meta, const gchar *dense_mode,
                                      guint input_width, guint input_height, guint grid_width,
                                      guint grid_height, const gfloat *dense)
{
  g_return_if_fail (meta != NULL && dense != NULL);
  g_free (meta->dense_mode);
  g_free (meta->dense);
  meta->dense_mode = g_strdup (dense_mode);
  meta->input_width = input_width;
  meta->input_height = input_height;
  meta->grid_width = grid_width;
  meta->grid_height = grid_height;
  meta->dense = g_memdup2 (dense, (gsize) grid_width * grid_height * meta->dim * sizeof (gfloat));
}

/* ---- segmentation meta ---- */

GType
gst_umgclip_segmentation_meta_api_get_type (void)
{
  static GType type = 0;
  /* "size": videoscale hands us the scale so frame size and boxes can follow the frame. */
  static const gchar *tags[] = { GST_META_TAG_VIDEO_STR, GST_META_TAG_VIDEO_SIZE_STR, NULL };
  if (g_once_init_enter (&type))
    {
      GType api = gst_meta_api_type_register ("GstUmgClipSegmentationMetaAPI", tags);
      g_once_init_leave (&type, api);
    }
  return type;
}

static gboolean
segmentation_meta_init (GstMeta *meta, gpointer params, GstBuffer *buffer)
{
  GstUmgClipSegmentationMeta *segmentation = (GstUmgClipSegmentationMeta *) meta;
  segmentation->frame_width = segmentation->frame_height = 0;
  segmentation->mask_width = segmentation->mask_height = 0;
  segmentation->format = GST_VIDEO_FORMAT_GRAY8;
  segmentation->class_map = NULL;
  segmentation->instance_map = NULL;
  segmentation->labels = NULL;
  segmentation->segments = g_array_new (FALSE, TRUE, sizeof (GstUmgClipSegment));
  segmentation->source_pts = GST_CLOCK_TIME_NONE;
  return TRUE;
}

static void
segmentation_meta_free (GstMeta *meta, GstBuffer *buffer)
{
  GstUmgClipSegmentationMeta *segmentation = (GstUmgClipSegmentationMeta *) meta;
  gst_clear_buffer (&segmentation->class_map);
  gst_clear_buffer (&segmentation->instance_map);
  g_strfreev (segmentation->labels);
  g_array_unref (segmentation->segments);
}

static gdouble
scale_ratio (gint to, gint from)
{
  return from > 0 ? (gdouble) to / from : 1.0;
}

static gboolean
segmentation_meta_transform (GstBuffer *dest, GstMeta *meta, GstBuffer *buffer, GQuark type,
                             gpointer data)
{
  GstUmgClipSegmentationMeta *source = (GstUmgClipSegmentationMeta *) meta;
  GstUmgClipSegmentationMeta *copy;
  g_autoptr (GstBuffer) class_map = NULL;
  g_autoptr (GstBuffer) instance_map = NULL;
  gdouble sx = 1.0, sy = 1.0;

  if (GST_VIDEO_META_TRANSFORM_IS_SCALE (type))
    {
      GstVideoMetaTransform *transform = data;
      sx = scale_ratio (GST_VIDEO_INFO_WIDTH (transform->out_info),
                        GST_VIDEO_INFO_WIDTH (transform->in_info));
      sy = scale_ratio (GST_VIDEO_INFO_HEIGHT (transform->out_info),
                        GST_VIDEO_INFO_HEIGHT (transform->in_info));
    }
  else if (!GST_META_TRANSFORM_IS_COPY (type))
    return FALSE;

  /* Deep copies: whoever writes into the copied maps must not change the original's. */
  if (source->class_map != NULL)
    class_map = gst_buffer_copy_deep (source->class_map);
  if (source->instance_map != NULL)
    instance_map = gst_buffer_copy_deep (source->instance_map);
  copy = gst_buffer_add_umgclip_segmentation_meta (
      dest, (guint) (source->frame_width * sx + 0.5), (guint) (source->frame_height * sy + 0.5),
      source->mask_width, source->mask_height, (const gchar *const *) source->labels, class_map,
      instance_map);
  if (copy == NULL)
    return FALSE;
  copy->format = source->format;
  copy->source_pts = source->source_pts;
  for (guint i = 0; i < source->segments->len; i++)
    {
      GstUmgClipSegment segment = g_array_index (source->segments, GstUmgClipSegment, i);
      gint x1 = (gint) (segment.x * sx + 0.5), y1 = (gint) (segment.y * sy + 0.5);
      gint x2 = (gint) ((segment.x + segment.w) * sx + 0.5);
      gint y2 = (gint) ((segment.y + segment.h) * sy + 0.5);
      segment.x = x1;
      segment.y = y1;
      segment.w = x2 - x1;
      segment.h = y2 - y1;
      g_array_append_val (copy->segments, segment);
    }
  return TRUE;
}

static gboolean segmentation_custom_meta_transform (GstBuffer *dest, GstCustomMeta *meta,
                                                    GstBuffer *buffer, GQuark type, gpointer data,
                                                    gpointer user_data);

const GstMetaInfo *
gst_umgclip_segmentation_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;
  if (g_once_init_enter ((GstMetaInfo **) &info))
    {
      static const gchar *custom_tags[]
          = { GST_META_TAG_VIDEO_STR, GST_META_TAG_VIDEO_SIZE_STR, NULL };
      const GstMetaInfo *registered
          = gst_meta_register (GST_UMGCLIP_SEGMENTATION_META_API_TYPE, "GstUmgClipSegmentationMeta",
                               sizeof (GstUmgClipSegmentationMeta), segmentation_meta_init,
                               segmentation_meta_free, segmentation_meta_transform);
      /* The custom twin is registered with the C meta so that any process that can produce
       * the C meta can also produce (and its bindings read) the custom one. */
      gst_meta_register_custom (GST_UMGCLIP_SEGMENTATION_CUSTOM_META_NAME, custom_tags,
                                segmentation_custom_meta_transform, NULL, NULL);
      g_once_init_leave ((GstMetaInfo **) &info, (GstMetaInfo *) registered);
    }
  return info;
}

GstUmgClipSegmentationMeta *
gst_buffer_add_umgclip_segmentation_meta (GstBuffer *buffer, guint frame_width, guint frame_height,
                                          guint mask_width, guint mask_height,
                                          const gchar *const *labels, GstBuffer *class_map,
                                          GstBuffer *instance_map)
{
  GstUmgClipSegmentationMeta *meta;
  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (class_map == NULL || GST_IS_BUFFER (class_map), NULL);

  meta = (GstUmgClipSegmentationMeta *) gst_buffer_add_meta (
      buffer, GST_UMGCLIP_SEGMENTATION_META_INFO, NULL);
  meta->frame_width = frame_width;
  meta->frame_height = frame_height;
  meta->mask_width = mask_width;
  meta->mask_height = mask_height;
  meta->labels = g_strdupv ((gchar **) labels);
  meta->format = (labels != NULL && g_strv_length ((gchar **) labels) > 255)
                     ? GST_VIDEO_FORMAT_GRAY16_LE
                     : GST_VIDEO_FORMAT_GRAY8;
  meta->class_map = class_map != NULL ? gst_buffer_ref (class_map) : NULL;
  meta->instance_map = instance_map != NULL ? gst_buffer_ref (instance_map) : NULL;
  return meta;
}

void
gst_umgclip_segmentation_meta_add_segment (GstUmgClipSegmentationMeta *meta,
                                           const GstUmgClipSegment *segment)
{
  g_return_if_fail (meta != NULL && segment != NULL);
  g_array_append_val (meta->segments, *segment);
}

/* ---- the custom twin of the segmentation meta ---- */

static GstStructure *
segment_structure (const GstUmgClipSegment *segment, const gchar *const *labels)
{
  guint n_labels = labels != NULL ? g_strv_length ((gchar **) labels) : 0;
  const gchar *label = segment->label_id < n_labels ? labels[segment->label_id] : "";
  return gst_structure_new ("segment", "id", G_TYPE_INT, (gint) segment->id, "label-id", G_TYPE_INT,
                            (gint) segment->label_id, "label", G_TYPE_STRING, label, "score",
                            G_TYPE_DOUBLE, (gdouble) segment->score, "is-thing", G_TYPE_BOOLEAN,
                            segment->is_thing, "x", G_TYPE_INT, segment->x, "y", G_TYPE_INT,
                            segment->y, "width", G_TYPE_INT, segment->w, "height", G_TYPE_INT,
                            segment->h, "area", G_TYPE_INT, (gint) segment->area, NULL);
}

GstCustomMeta *
gst_buffer_add_umgclip_segmentation_custom_meta (GstBuffer *buffer,
                                                 const GstUmgClipSegmentationMeta *meta)
{
  GstCustomMeta *custom;
  GstStructure *structure;
  GValue labels = G_VALUE_INIT, segments = G_VALUE_INIT;

  g_return_val_if_fail (GST_IS_BUFFER (buffer) && meta != NULL, NULL);
  gst_umgclip_segmentation_meta_get_info (); /* registers the custom meta */
  custom = gst_buffer_add_custom_meta (buffer, GST_UMGCLIP_SEGMENTATION_CUSTOM_META_NAME);
  if (custom == NULL)
    return NULL;
  structure = gst_custom_meta_get_structure (custom);

  gst_value_array_init (&labels, 0);
  for (guint i = 0; meta->labels != NULL && meta->labels[i] != NULL; i++)
    {
      GValue label = G_VALUE_INIT;
      g_value_init (&label, G_TYPE_STRING);
      g_value_set_string (&label, meta->labels[i]);
      gst_value_array_append_and_take_value (&labels, &label);
    }
  gst_value_array_init (&segments, meta->segments->len);
  for (guint i = 0; i < meta->segments->len; i++)
    {
      GValue segment = G_VALUE_INIT;
      g_value_init (&segment, GST_TYPE_STRUCTURE);
      g_value_take_boxed (&segment,
                          segment_structure (&g_array_index (meta->segments, GstUmgClipSegment, i),
                                             (const gchar *const *) meta->labels));
      gst_value_array_append_and_take_value (&segments, &segment);
    }

  gst_structure_set (structure, "width", G_TYPE_INT, (gint) meta->mask_width, "height", G_TYPE_INT,
                     (gint) meta->mask_height, "frame-width", G_TYPE_INT, (gint) meta->frame_width,
                     "frame-height", G_TYPE_INT, (gint) meta->frame_height, "format", G_TYPE_STRING,
                     gst_video_format_to_string (meta->format), "source-pts", G_TYPE_UINT64,
                     (guint64) meta->source_pts, NULL);
  gst_structure_take_value (structure, "labels", &labels);
  gst_structure_take_value (structure, "segments", &segments);
  if (meta->class_map != NULL)
    gst_structure_set (structure, "class-map", GST_TYPE_BUFFER, meta->class_map, NULL);
  if (meta->instance_map != NULL)
    gst_structure_set (structure, "instance-map", GST_TYPE_BUFFER, meta->instance_map, NULL);
  return custom;
}

static void
scale_segment_structure (GstStructure *segment, gdouble sx, gdouble sy)
{
  gint x = 0, y = 0, w = 0, h = 0;
  gst_structure_get (segment, "x", G_TYPE_INT, &x, "y", G_TYPE_INT, &y, "width", G_TYPE_INT, &w,
                     "height", G_TYPE_INT, &h, NULL);
  gint x1 = (gint) (x * sx + 0.5), y1 = (gint) (y * sy + 0.5);
  gint x2 = (gint) ((x + w) * sx + 0.5), y2 = (gint) ((y + h) * sy + 0.5);
  gst_structure_set (segment, "x", G_TYPE_INT, x1, "y", G_TYPE_INT, y1, "width", G_TYPE_INT,
                     x2 - x1, "height", G_TYPE_INT, y2 - y1, NULL);
}

/* As the C meta, scaling moves frame size and boxes; unlike it, copies share the map buffers
 * (structure fields are referenced), which bindings only read. */
static gboolean
segmentation_custom_meta_transform (GstBuffer *dest, GstCustomMeta *meta, GstBuffer *buffer,
                                    GQuark type, gpointer data, gpointer user_data)
{
  GstStructure *source = gst_custom_meta_get_structure (meta), *copy;
  GstCustomMeta *custom;
  gdouble sx = 1.0, sy = 1.0;

  if (GST_VIDEO_META_TRANSFORM_IS_SCALE (type))
    {
      GstVideoMetaTransform *transform = data;
      sx = scale_ratio (GST_VIDEO_INFO_WIDTH (transform->out_info),
                        GST_VIDEO_INFO_WIDTH (transform->in_info));
      sy = scale_ratio (GST_VIDEO_INFO_HEIGHT (transform->out_info),
                        GST_VIDEO_INFO_HEIGHT (transform->in_info));
    }
  else if (!GST_META_TRANSFORM_IS_COPY (type))
    return FALSE;

  custom = gst_buffer_add_custom_meta (dest, GST_UMGCLIP_SEGMENTATION_CUSTOM_META_NAME);
  if (custom == NULL)
    return FALSE;
  copy = gst_custom_meta_get_structure (custom);
  for (guint i = 0; i < (guint) gst_structure_n_fields (source); i++)
    {
      const gchar *name = gst_structure_nth_field_name (source, i);
      gst_structure_set_value (copy, name, gst_structure_get_value (source, name));
    }
  if (sx != 1.0 || sy != 1.0)
    {
      gint frame_width = 0, frame_height = 0;
      const GValue *segments = gst_structure_get_value (copy, "segments");
      gst_structure_get_int (copy, "frame-width", &frame_width);
      gst_structure_get_int (copy, "frame-height", &frame_height);
      gst_structure_set (copy, "frame-width", G_TYPE_INT, (gint) (frame_width * sx + 0.5),
                         "frame-height", G_TYPE_INT, (gint) (frame_height * sy + 0.5), NULL);
      /* The structures inside the array were copied with it, so they are ours to change. */
      for (guint i = 0; segments != NULL && i < gst_value_array_get_size (segments); i++)
        scale_segment_structure (
            (GstStructure *) gst_value_get_structure (gst_value_array_get_value (segments, i)), sx,
            sy);
    }
  return TRUE;
}

/* ---- tags on regions of interest ---- */

typedef struct
{
  const gchar *label;
  guint label_id;
  gdouble score;
} RankedTag;

static gint
compare_tags_best_first (gconstpointer a, gconstpointer b)
{
  const RankedTag *first = a, *second = b;
  if (first->score != second->score)
    return first->score > second->score ? -1 : 1;
  return (first->label_id > second->label_id) - (first->label_id < second->label_id);
}

GstStructure *
gst_umgclip_tags_structure_new (const gchar *model, const gchar *const *labels,
                                const guint *label_ids, const gdouble *scores, guint n,
                                GstClockTime source_pts)
{
  g_autofree RankedTag *ranked = NULL;
  GValue tags = G_VALUE_INIT, tag_scores = G_VALUE_INIT;
  GstStructure *params;

  g_return_val_if_fail (n == 0 || (labels != NULL && label_ids != NULL && scores != NULL), NULL);

  ranked = g_new (RankedTag, MAX (n, 1));
  for (guint i = 0; i < n; i++)
    ranked[i] = (RankedTag){ labels[i], label_ids[i], scores[i] };
  qsort (ranked, n, sizeof (RankedTag), compare_tags_best_first);

  gst_value_array_init (&tags, n);
  gst_value_array_init (&tag_scores, n);
  for (guint i = 0; i < n; i++)
    {
      GValue label = G_VALUE_INIT, score = G_VALUE_INIT;
      g_value_init (&label, G_TYPE_STRING);
      g_value_set_string (&label, ranked[i].label);
      gst_value_array_append_and_take_value (&tags, &label);
      g_value_init (&score, G_TYPE_DOUBLE);
      g_value_set_double (&score, ranked[i].score);
      gst_value_array_append_and_take_value (&tag_scores, &score);
    }

  params = gst_structure_new ("umgclip", "model", G_TYPE_STRING, model != NULL ? model : "",
                              "source-pts", G_TYPE_UINT64, (guint64) source_pts, NULL);
  if (n > 0)
    gst_structure_set (params, "label", G_TYPE_STRING, ranked[0].label, "label_id", G_TYPE_INT,
                       (gint) ranked[0].label_id, "confidence", G_TYPE_DOUBLE, ranked[0].score,
                       NULL);
  gst_structure_take_value (params, "tags", &tags);
  gst_structure_take_value (params, "scores", &tag_scores);
  return params;
}

void
gst_umgclip_roi_replace_param (GstVideoRegionOfInterestMeta *roi, GstStructure *params)
{
  const gchar *name = gst_structure_get_name (params);

  /* Replace, not append: get_param() returns the first structure of a name. */
  for (GList *link = roi->params; link != NULL;)
    {
      GList *next = link->next;
      if (gst_structure_has_name (link->data, name))
        {
          gst_structure_free (link->data);
          roi->params = g_list_delete_link (roi->params, link);
        }
      link = next;
    }
  gst_video_region_of_interest_meta_add_param (roi, params);
}

void
gst_umgclip_roi_set_tags (GstVideoRegionOfInterestMeta *roi, const gchar *model,
                          const gchar *const *labels, const guint *label_ids, const gdouble *scores,
                          guint n, GstClockTime source_pts)
{
  g_return_if_fail (roi != NULL);
  gst_umgclip_roi_replace_param (
      roi, gst_umgclip_tags_structure_new (model, labels, label_ids, scores, n, source_pts));
}

gboolean
gst_umgclip_structure_get_number (const GstStructure *structure, const gchar *field, gdouble *out)
{
  const GValue *value = structure != NULL ? gst_structure_get_value (structure, field) : NULL;
  GValue as_double = G_VALUE_INIT;
  if (value == NULL || !g_value_type_transformable (G_VALUE_TYPE (value), G_TYPE_DOUBLE))
    return FALSE;
  g_value_init (&as_double, G_TYPE_DOUBLE);
  g_value_transform (value, &as_double);
  *out = g_value_get_double (&as_double);
  return TRUE;
}

/* ---- active alerts ---- */

GstCustomMeta *
gst_buffer_add_umgclip_alerts_meta (GstBuffer *buffer, const gchar *stream)
{
  static gsize registered = 0;
  GstCustomMeta *custom;
  GValue alerts = G_VALUE_INIT;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  if (g_once_init_enter (&registered))
    {
      static const gchar *tags[] = { NULL };
      /* no transform: copied as is; alerts describe the frame, not its pixels */
      gst_meta_register_custom (GST_UMGCLIP_ALERTS_CUSTOM_META_NAME, tags, NULL, NULL, NULL);
      g_once_init_leave (&registered, 1);
    }
  custom = gst_buffer_add_custom_meta (buffer, GST_UMGCLIP_ALERTS_CUSTOM_META_NAME);
  if (custom == NULL)
    return NULL;
  gst_value_array_init (&alerts, 0);
  gst_structure_set (gst_custom_meta_get_structure (custom), "stream", G_TYPE_STRING,
                     stream != NULL ? stream : "", NULL);
  gst_structure_take_value (gst_custom_meta_get_structure (custom), "alerts", &alerts);
  return custom;
}

void
gst_umgclip_alerts_meta_add (GstCustomMeta *meta, const gchar *query, gdouble score,
                             GstClockTime since, GstClockTime source_pts)
{
  GstStructure *structure;
  const GValue *alerts;
  GValue alert = G_VALUE_INIT, appended = G_VALUE_INIT;

  g_return_if_fail (meta != NULL && query != NULL);
  structure = gst_custom_meta_get_structure (meta);
  alerts = gst_structure_get_value (structure, "alerts");
  g_return_if_fail (alerts != NULL && GST_VALUE_HOLDS_ARRAY (alerts));
  g_value_init (&alert, GST_TYPE_STRUCTURE);
  g_value_take_boxed (&alert, gst_structure_new ("alert", "query", G_TYPE_STRING, query, "score",
                                                 G_TYPE_DOUBLE, score, "since", G_TYPE_UINT64,
                                                 (guint64) since, "source-pts", G_TYPE_UINT64,
                                                 (guint64) source_pts, NULL));
  g_value_init (&appended, GST_TYPE_ARRAY);
  g_value_copy (alerts, &appended);
  gst_value_array_append_and_take_value (&appended, &alert);
  gst_structure_take_value (structure, "alerts", &appended);
}

void
gst_umgclip_roi_set_segment (GstVideoRegionOfInterestMeta *roi, guint segment_id)
{
  gst_umgclip_roi_replace_param (
      roi, gst_structure_new ("umgclip-segment", "id", G_TYPE_UINT, segment_id, NULL));
}

gboolean
gst_umgclip_roi_get_segment (GstVideoRegionOfInterestMeta *roi, guint *segment_id)
{
  GstStructure *params = gst_video_region_of_interest_meta_get_param (roi, "umgclip-segment");
  return params != NULL && gst_structure_get_uint (params, "id", segment_id);
}
