/* GstAnalytics out (object detections, classifications, segmentation, the embedding tensor) and
 * in (upstream object detections) for the umgclip elements; see gstumgclipanalytics.h. */
#include "gstumgclipanalytics.h"

#include <gst/video/video.h>

GST_DEBUG_CATEGORY_STATIC (gst_umgclip_analytics_debug);
#define GST_CAT_DEFAULT gst_umgclip_analytics_debug

/* Boxes that differ by at most this many pixels per side are the same region (rounding when
 * umgclipseg's mask boxes are scaled to the frame). */
#define SAME_BOX_SLACK 1

static void
ensure_debug_category (void)
{
  static gsize done = 0;
  if (g_once_init_enter (&done))
    {
      GST_DEBUG_CATEGORY_INIT (gst_umgclip_analytics_debug, "umgclipanalytics", 0,
                               "umgclip GstAnalytics metadata");
      g_once_init_leave (&done, 1);
    }
}

static GstAnalyticsRelationMeta *
relation_meta (GstBuffer *buffer)
{
  GstAnalyticsRelationMeta *meta = gst_buffer_get_analytics_relation_meta (buffer);
  return meta != NULL ? meta : gst_buffer_add_analytics_relation_meta (buffer);
}

static gboolean
same_box (gint ax, gint ay, gint aw, gint ah, gint bx, gint by, gint bw, gint bh)
{
  return ABS (ax - bx) <= SAME_BOX_SLACK && ABS (ay - by) <= SAME_BOX_SLACK
         && ABS (aw - bw) <= SAME_BOX_SLACK && ABS (ah - bh) <= SAME_BOX_SLACK;
}

/* The id of the OD mtd with this box on meta, or G_MAXUINT. Any type: a detection typed by an
 * earlier tagger's best tag is the same region as the ROI it tagged. */
static guint
find_od (GstAnalyticsRelationMeta *meta, gint x, gint y, gint w, gint h)
{
  gpointer state = NULL;
  GstAnalyticsODMtd od;
  while (
      gst_analytics_relation_meta_iterate (meta, &state, gst_analytics_od_mtd_get_mtd_type (), &od))
    {
      gint ox, oy, ow, oh;
      gfloat confidence;
      if (gst_analytics_od_mtd_get_location (&od, &ox, &oy, &ow, &oh, &confidence)
          && same_box (ox, oy, ow, oh, x, y, w, h))
        return od.id;
    }
  return G_MAXUINT;
}

static void
relate (GstAnalyticsRelationMeta *meta, guint whole, guint part)
{
  gst_analytics_relation_meta_set_relation (meta, GST_UMGCLIP_ANALYTICS_OD_TO_CLS, whole, part);
  gst_analytics_relation_meta_set_relation (meta, GST_UMGCLIP_ANALYTICS_CLS_TO_OD, part, whole);
}

/* The ranked tags and scores of an "umgclip" param structure; FALSE when it has none. */
static gboolean
read_tags (const GstStructure *tags, GArray *quarks, GArray *levels)
{
  const GValue *names = gst_structure_get_value (tags, "tags");
  const GValue *scores = gst_structure_get_value (tags, "scores");
  guint n;
  if (names == NULL || scores == NULL || !GST_VALUE_HOLDS_ARRAY (names)
      || !GST_VALUE_HOLDS_ARRAY (scores))
    return FALSE;
  n = MIN (gst_value_array_get_size (names), gst_value_array_get_size (scores));
  for (guint i = 0; i < n; i++)
    {
      const GValue *name = gst_value_array_get_value (names, i);
      const GValue *score = gst_value_array_get_value (scores, i);
      GQuark quark;
      gfloat level;
      if (!G_VALUE_HOLDS_STRING (name) || !G_VALUE_HOLDS_DOUBLE (score))
        continue;
      quark = g_quark_from_string (g_value_get_string (name));
      level = (gfloat) g_value_get_double (score);
      g_array_append_val (quarks, quark);
      g_array_append_val (levels, level);
    }
  return quarks->len > 0;
}

guint
gst_umgclip_analytics_add_tags (GstBuffer *buffer, gint x, gint y, gint w, gint h,
                                const GstStructure *tags, guint od_id)
{
  g_autoptr (GArray) quarks = g_array_new (FALSE, FALSE, sizeof (GQuark));
  g_autoptr (GArray) levels = g_array_new (FALSE, FALSE, sizeof (gfloat));
  GstAnalyticsRelationMeta *meta;
  GstAnalyticsClsMtd cls;

  ensure_debug_category ();
  if (tags == NULL || !read_tags (tags, quarks, levels))
    /* no tag passed threshold: nothing to classify the region as */
    return G_MAXUINT;
  meta = relation_meta (buffer);
  if (od_id == G_MAXUINT)
    od_id = find_od (meta, x, y, w, h);
  if (od_id == G_MAXUINT)
    {
      GstAnalyticsODMtd od;
      if (!gst_analytics_relation_meta_add_od_mtd (meta, g_array_index (quarks, GQuark, 0), x, y, w,
                                                   h, g_array_index (levels, gfloat, 0), &od))
        return G_MAXUINT;
      od_id = od.id;
    }
  if (!gst_analytics_relation_meta_add_cls_mtd (meta, quarks->len, (gfloat *) levels->data,
                                                (GQuark *) quarks->data, &cls))
    return G_MAXUINT;
  relate (meta, od_id, cls.id);
  return cls.id;
}

#ifdef HAVE_GST_ANALYTICS_1_26
/* A GRAY16_LE mask of segment ids (0: none) at mask resolution, with its GstVideoMeta: panoptic
 * mode's instance map as it is (memory shared), else made from the class map, where each label
 * has one segment. */
static GstBuffer *
segment_id_mask (const GstUmgClipSegmentationMeta *seg)
{
  const gsize n_pixels = (gsize) seg->mask_width * seg->mask_height;
  const guint n_labels = seg->labels != NULL ? g_strv_length (seg->labels) : 0;
  const gboolean wide = seg->format != GST_VIDEO_FORMAT_GRAY8;
  g_autofree guint16 *segment_of_label = g_new0 (guint16, MAX (n_labels, 1));
  GstBuffer *mask;
  GstMapInfo in, out;

  if (seg->instance_map != NULL)
    mask = gst_buffer_copy_region (seg->instance_map, GST_BUFFER_COPY_MEMORY, 0, -1);
  else
    {
      if (seg->class_map == NULL || !gst_buffer_map (seg->class_map, &in, GST_MAP_READ))
        return NULL;
      if (in.size < n_pixels * (wide ? 2 : 1))
        {
          GST_DEBUG ("class map of %" G_GSIZE_FORMAT " bytes for %ux%u pixels: no mask", in.size,
                     seg->mask_width, seg->mask_height);
          gst_buffer_unmap (seg->class_map, &in);
          return NULL;
        }
      for (guint i = 0; i < seg->segments->len; i++)
        {
          const GstUmgClipSegment *segment = &g_array_index (seg->segments, GstUmgClipSegment, i);
          if (segment->label_id < n_labels)
            segment_of_label[segment->label_id] = (guint16) segment->id;
        }
      mask = gst_buffer_new_allocate (NULL, n_pixels * 2, NULL);
      gst_buffer_map (mask, &out, GST_MAP_WRITE);
      for (gsize p = 0; p < n_pixels; p++)
        {
          guint label = wide ? GST_READ_UINT16_LE (in.data + 2 * p) : in.data[p];
          GST_WRITE_UINT16_LE (out.data + 2 * p, label < n_labels ? segment_of_label[label] : 0);
        }
      gst_buffer_unmap (mask, &out);
      gst_buffer_unmap (seg->class_map, &in);
    }
  gst_buffer_add_video_meta (mask, GST_VIDEO_FRAME_FLAG_NONE, GST_VIDEO_FORMAT_GRAY16_LE,
                             seg->mask_width, seg->mask_height);
  return mask;
}
#endif

void
gst_umgclip_analytics_add_segmentation (GstBuffer *buffer, const GstUmgClipSegmentationMeta *seg)
{
  const guint n_labels = seg->labels != NULL ? g_strv_length (seg->labels) : 0;
  const guint n_segments = seg->segments->len;
  GstAnalyticsRelationMeta *meta;
  g_autofree guint *parts = g_new (guint, MAX (2 * n_segments, 1));
  guint n_parts = 0;

  ensure_debug_category ();
  meta = relation_meta (buffer);
  /* every segment's classification, in region order; things also get their detection */
  for (guint i = 0; i < n_segments; i++)
    {
      const GstUmgClipSegment *segment = &g_array_index (seg->segments, GstUmgClipSegment, i);
      GQuark label = g_quark_from_string (
          segment->label_id < n_labels ? seg->labels[segment->label_id] : "");
      GstAnalyticsClsMtd cls;
      GstAnalyticsODMtd od;
      if (!gst_analytics_relation_meta_add_one_cls_mtd (meta, segment->score, label, &cls))
        return;
      parts[n_parts++] = cls.id;
      if (!segment->is_thing)
        continue;
      if (!gst_analytics_relation_meta_add_od_mtd (meta, label, segment->x, segment->y, segment->w,
                                                   segment->h, segment->score, &od))
        return;
      relate (meta, od.id, cls.id);
      parts[n_parts++] = od.id;
    }
#ifdef HAVE_GST_ANALYTICS_1_26
  {
    g_autofree guint *region_ids = g_new (guint, MAX (n_segments, 1));
    GstAnalyticsSegmentationMtd segmentation;
    GstBuffer *mask = segment_id_mask (seg);
    if (mask == NULL)
      return;
    for (guint i = 0; i < n_segments; i++)
      region_ids[i] = g_array_index (seg->segments, GstUmgClipSegment, i).id;
    /* the mask keeps its resolution and covers the whole frame, as in our own meta */
    if (!gst_analytics_relation_meta_add_segmentation_mtd (
            meta, mask,
            seg->instance_map != NULL ? GST_SEGMENTATION_TYPE_INSTANCE
                                      : GST_SEGMENTATION_TYPE_SEMANTIC,
            n_segments, region_ids, 0, 0, seg->frame_width, seg->frame_height, &segmentation))
      return;
    for (guint i = 0; i < n_parts; i++)
      relate (meta, segmentation.id, parts[i]);
  }
#endif
}

void
gst_umgclip_analytics_add_embedding (GstBuffer *buffer, const GstUmgClipEmbeddingMeta *embedding)
{
#ifdef HAVE_GST_ANALYTICS_1_26
  GstTensorMeta *meta = gst_buffer_get_tensor_meta (buffer);
  gsize dims[2] = { 1, embedding->dim };
  GstTensor **tensors;
  guint n = 0;

  if (meta == NULL)
    meta = gst_buffer_add_tensor_meta (buffer);
  /* setting the tensors frees the old ones: upstream's go in again as copies */
  tensors = g_new (GstTensor *, meta->num_tensors + 1);
  for (; n < meta->num_tensors; n++)
    tensors[n] = gst_tensor_copy (meta->tensors[n]);
  tensors[n++] = gst_tensor_new_simple (
      g_quark_from_static_string (GST_UMGCLIP_ANALYTICS_EMBEDDING_TENSOR_ID),
      GST_TENSOR_DATA_TYPE_FLOAT32,
      gst_buffer_new_memdup (embedding->embedding, embedding->dim * sizeof (gfloat)),
      GST_TENSOR_DIM_ORDER_ROW_MAJOR, 2, dims);
  gst_tensor_meta_set (meta, n, tensors);
#endif
}

/* A region-of-interest meta with this box on buffer (of any type, as in find_od): the detection is
 * already a region. */
static gboolean
has_roi (GstBuffer *buffer, gint x, gint y, gint w, gint h)
{
  gpointer state = NULL;
  GstMeta *meta;
  while ((meta = gst_buffer_iterate_meta_filtered (buffer, &state,
                                                   GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)))
    {
      GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
      if (same_box (roi->x, roi->y, roi->w, roi->h, x, y, w, h))
        return TRUE;
    }
  return FALSE;
}

GArray *
gst_umgclip_analytics_get_detections (GstBuffer *buffer, gint frame_width, gint frame_height)
{
  GArray *detections = g_array_new (FALSE, FALSE, sizeof (GstUmgClipDetection));
  GstAnalyticsRelationMeta *meta = gst_buffer_get_analytics_relation_meta (buffer);
  gpointer state = NULL;
  GstAnalyticsODMtd od;

  ensure_debug_category ();
  if (meta == NULL)
    return detections;
  while (
      gst_analytics_relation_meta_iterate (meta, &state, gst_analytics_od_mtd_get_mtd_type (), &od))
    {
      GstUmgClipDetection detection
          = { .od_id = od.id, .type = gst_analytics_od_mtd_get_obj_type (&od) };
      gint x, y, w, h, x1, y1;
      gfloat confidence;
      if (!gst_analytics_od_mtd_get_location (&od, &x, &y, &w, &h, &confidence))
        continue;
      if (has_roi (buffer, x, y, w, h))
        continue;
      /* 64-bit sums: a detector may write any int */
      x1 = (gint) CLAMP ((gint64) x + w, 0, frame_width);
      y1 = (gint) CLAMP ((gint64) y + h, 0, frame_height);
      detection.x = CLAMP (x, 0, frame_width);
      detection.y = CLAMP (y, 0, frame_height);
      detection.w = x1 - detection.x;
      detection.h = y1 - detection.y;
      if (w <= 0 || h <= 0 || detection.w <= 0 || detection.h <= 0)
        {
          GST_DEBUG ("object detection %u (%s) at %d,%d %dx%d: empty or outside the %dx%d frame, "
                     "skipped",
                     od.id, g_quark_to_string (detection.type), x, y, w, h, frame_width,
                     frame_height);
          continue;
        }
      if (detection.x != x || detection.y != y || detection.w != w || detection.h != h)
        GST_DEBUG ("object detection %u (%s) at %d,%d %dx%d clipped to the %dx%d frame: %d,%d "
                   "%dx%d",
                   od.id, g_quark_to_string (detection.type), x, y, w, h, frame_width, frame_height,
                   detection.x, detection.y, detection.w, detection.h);
      g_array_append_val (detections, detection);
    }
  return detections;
}
