/* umgcliptag: open-vocabulary tags for regions of interest. Each region's embedding (RoI-Align
 * or mask-average on the dense map, or a re-encoded crop) is ranked against the labels and the
 * ranking written as the "umgclip" param structure of its GstVideoRegionOfInterestMeta. */
#include "gstumgcliptag.h"
#include "umgclipmeta.h"
#ifdef HAVE_GST_ANALYTICS
#include "gstumgclipanalytics.h"
#endif

#include <math.h>
#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_umgclip_tag_debug);
#define GST_CAT_DEFAULT gst_umgclip_tag_debug

#define DEFAULT_INFERENCE_REGION GST_UMGCLIP_TAG_REGION_FULL_FRAME
#define DEFAULT_TOP_K 5
#define DEFAULT_REGION_MODE GST_UMGCLIP_TAG_REGION_MODE_ROI_ALIGN

/* On frames without inference, an upstream ROI takes the tags of last inference's region of
 * the same type that overlaps it at least this much (intersection over union). */
#define CARRY_MIN_IOU 0.5

enum
{
  PROP_0,
  PROP_INFERENCE_REGION,
  PROP_OBJECT_CLASS,
  PROP_TOP_K,
  PROP_REGION_MODE,
};

/* Tags for an upstream ROI (or object-detection mtd): the result's own data, put by apply() on the
 * ROI (detection) of the same type that overlaps this box most on every frame that carries the
 * result (the frame it came from included, where the box is the ROI's own). */
typedef struct
{
  gboolean detection; /* an upstream GstAnalytics object detection, not a ROI */
  GQuark roi_type;
  gint x, y, w, h;
  GstStructure *params;
} CarriedTags;

struct _GstUmgClipTag
{
  GstUmgClipFilter parent;

  /* Properties, under the object lock. */
  GstUmgClipTagRegion inference_region;
  gchar *object_class;
  guint top_k;
  GstUmgClipTagRegionMode region_mode;

  gint warned_outside; /* atomic: an upstream ROI outside the frame was reported */
};

G_DEFINE_TYPE_WITH_CODE (GstUmgClipTag, gst_umgclip_tag, GST_TYPE_UMGCLIP_FILTER,
                         GST_DEBUG_CATEGORY_INIT (gst_umgclip_tag_debug, "umgcliptag", 0,
                                                  "umgclip region tagger"))
GST_ELEMENT_REGISTER_DEFINE (umgcliptag, "umgcliptag", GST_RANK_NONE, GST_TYPE_UMGCLIP_TAG)

GType
gst_umgclip_tag_region_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_UMGCLIP_TAG_REGION_FULL_FRAME, "The whole frame as one region (roi_type \"frame\")",
      "full-frame" },
    { GST_UMGCLIP_TAG_REGION_ROI_LIST,
      "Every region-of-interest meta already on the buffer (from a detector or umgclipseg)",
      "roi-list" },
    { GST_UMGCLIP_TAG_REGION_SEGMENTS,
      "Every segment of the umgclipseg segmentation meta on the buffer", "segments" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type))
    {
      GType registered = g_enum_register_static ("GstUmgClipTagRegion", values);
      g_once_init_leave (&type, registered);
    }
  return type;
}

GType
gst_umgclip_tag_region_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_UMGCLIP_TAG_REGION_MODE_ROI_ALIGN,
      "Pool the frame's dense feature map over the region (one backbone pass per frame)",
      "roi-align" },
    { GST_UMGCLIP_TAG_REGION_MODE_CROP,
      "Re-encode the region's crop through the vision tower (one pass per region, slower)",
      "crop" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type))
    {
      GType registered = g_enum_register_static ("GstUmgClipTagRegionMode", values);
      g_once_init_leave (&type, registered);
    }
  return type;
}

/* ---- regions ---- */

/* One region to tag. */
typedef struct
{
  GstVideoRegionOfInterestMeta *roi; /* an upstream meta to write into, or NULL: a new one */
  gboolean detection;                /* an upstream object detection (roi NULL): no new meta */
  const gchar *roi_type;             /* for a new meta; a detection's type */
  gint x, y, w, h;                   /* frame pixels */
  const GstUmgClipSegment *segment;  /* segments mode */
  const gchar *segment_label;
} Region;

static gboolean
object_class_accepts (GStrv object_classes, const gchar *name)
{
  if (object_classes == NULL || object_classes[0] == NULL)
    return TRUE;
  return name != NULL && g_strv_contains ((const gchar *const *) object_classes, name);
}

/* "person, car" as stripped, non-empty names; NULL when no filter is set. */
static GStrv
parse_object_classes (const gchar *text)
{
  GStrv names = umgclip_split_list (text, ",");
  if (names[0] == NULL)
    g_clear_pointer (&names, g_strfreev);
  return names;
}

/* An upstream ROI passes the filter by its roi_type or by the label of its DL Streamer
 * "detection" structure. */
static gboolean
roi_accepted (GstVideoRegionOfInterestMeta *roi, GStrv object_classes)
{
  GstStructure *detection;
  if (object_classes == NULL)
    return TRUE;
  if (object_class_accepts (object_classes, g_quark_to_string (roi->roi_type)))
    return TRUE;
  detection = gst_video_region_of_interest_meta_get_param (roi, "detection");
  return detection != NULL
         && object_class_accepts (object_classes, gst_structure_get_string (detection, "label"));
}

/* An upstream box clipped to the frame, in 64 bits (x + w of two 32-bit values may wrap); FALSE
 * when nothing of it is inside. */
static gboolean
clip_box (const GstVideoRegionOfInterestMeta *roi, gint frame_width, gint frame_height, gint *x,
          gint *y, gint *w, gint *h)
{
  if (roi->w == 0 || roi->h == 0 || roi->x >= (guint) frame_width || roi->y >= (guint) frame_height)
    return FALSE;
  *x = roi->x;
  *y = roi->y;
  *w = (gint) MIN ((guint64) roi->w, (guint64) (frame_width - *x));
  *h = (gint) MIN ((guint64) roi->h, (guint64) (frame_height - *y));
  return TRUE;
}

/* Upstream boxes come from detectors and trackers that may drift past the edges (or from a
 * stream of another size): a box partly outside is clipped to the frame, one wholly outside has
 * nothing to look at and is left untagged. The first such box is reported. */
static void
collect_roi_list (GstUmgClipTag *tag, GstBuffer *buffer, GStrv object_classes, gint frame_width,
                  gint frame_height, GArray *regions)
{
  gpointer state = NULL;
  GstMeta *meta;
  while ((meta = gst_buffer_iterate_meta_filtered (buffer, &state,
                                                   GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)))
    {
      GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
      Region region = { .roi = roi };
      gboolean inside
          = clip_box (roi, frame_width, frame_height, &region.x, &region.y, &region.w, &region.h);
      gboolean clipped = inside && (region.w != (gint64) roi->w || region.h != (gint64) roi->h);
      if (!roi_accepted (roi, object_classes))
        continue;
      if ((!inside || clipped) && g_atomic_int_compare_and_exchange (&tag->warned_outside, 0, 1))
        GST_ELEMENT_WARNING (
            tag, STREAM, FORMAT,
            ("An upstream region of interest (x %u, y %u, w %u, h %u) lies %s the "
             "%dx%d frame: %s",
             roi->x, roi->y, roi->w, roi->h, inside ? "partly outside" : "outside", frame_width,
             frame_height, inside ? "tagged clipped to the frame" : "left untagged"),
            ("roi_type %s; later ones are not reported", g_quark_to_string (roi->roi_type)));
      if (!inside)
        continue;
      g_array_append_val (regions, region);
    }
#ifdef HAVE_GST_ANALYTICS
  {
    /* and the object detections that no ROI stands for, clipped to the frame */
    g_autoptr (GArray) detections
        = gst_umgclip_analytics_get_detections (buffer, frame_width, frame_height);
    for (guint i = 0; i < detections->len; i++)
      {
        const GstUmgClipDetection *found = &g_array_index (detections, GstUmgClipDetection, i);
        Region region = { .detection = TRUE,
                          .roi_type = g_quark_to_string (found->type),
                          .x = found->x,
                          .y = found->y,
                          .w = found->w,
                          .h = found->h };
        if (object_class_accepts (object_classes, region.roi_type))
          g_array_append_val (regions, region);
      }
  }
#endif
}

/* The upstream ROI that umgclipseg made for a segment: same label and box. */
static GstVideoRegionOfInterestMeta *
find_segment_roi (GstBuffer *buffer, const gchar *label, gint x, gint y, gint w, gint h)
{
  GQuark type = g_quark_try_string (label);
  gpointer state = NULL;
  GstMeta *meta;
  if (type == 0)
    return NULL;
  while ((meta = gst_buffer_iterate_meta_filtered (buffer, &state,
                                                   GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)))
    {
      GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
      if (roi->roi_type == type && ABS ((gint) roi->x - x) <= 1 && ABS ((gint) roi->y - y) <= 1
          && ABS ((gint) roi->w - w) <= 1 && ABS ((gint) roi->h - h) <= 1)
        return roi;
    }
  return NULL;
}

static void
collect_segments (GstBuffer *buffer, const GstUmgClipSegmentationMeta *seg, GStrv object_classes,
                  gint frame_width, gint frame_height, GArray *regions)
{
  /* The meta's boxes are in the pixels of the frame it was made for. */
  const gdouble scale_x = (gdouble) frame_width / MAX (seg->frame_width, 1);
  const gdouble scale_y = (gdouble) frame_height / MAX (seg->frame_height, 1);
  const guint n_labels = seg->labels != NULL ? g_strv_length (seg->labels) : 0;

  for (guint i = 0; i < seg->segments->len; i++)
    {
      const GstUmgClipSegment *segment = &g_array_index (seg->segments, GstUmgClipSegment, i);
      const gchar *label = segment->label_id < n_labels ? seg->labels[segment->label_id] : "";
      Region region = { .segment = segment, .segment_label = label, .roi_type = label };
      if (!object_class_accepts (object_classes, label) || segment->area == 0)
        continue;
      region.x = (gint) lround (segment->x * scale_x);
      region.y = (gint) lround (segment->y * scale_y);
      region.w = MAX (1, (gint) lround (segment->w * scale_x));
      region.h = MAX (1, (gint) lround (segment->h * scale_y));
      region.roi = find_segment_roi (buffer, label, region.x, region.y, region.w, region.h);
      g_array_append_val (regions, region);
    }
}

/* ---- region embeddings ---- */

/* RoI-Align (aligned) of a frame-pixel box on the dense map, which covers the whole frame. The
 * runtime does the same inside the vision pass, but here the map may come from an upstream
 * umgclipenc, so the pooling runs on the features the element was given. */
static void
roi_align_embedding (const GstUmgClipFeatures *features, gint frame_width, gint frame_height,
                     const Region *region, gfloat *out)
{
  const gfloat box[4] = { region->x, region->y, region->w, region->h };
  umgclip_roi_align (features->dense, features->grid_width, features->grid_height, features->dim,
                     (gfloat) features->grid_width / frame_width,
                     (gfloat) features->grid_height / frame_height, box, 1, out);
}

/* Mask average of the dense map over each segment's pixels (umgclip_mask_pool): a pixel's
 * segment is its instance id in panoptic mode, its class in semantic mode. */
static gboolean
segment_embeddings (const GstUmgClipSegmentationMeta *seg, const GstUmgClipFeatures *features,
                    const Region *regions, guint n_regions, gfloat *out, GError **error)
{
  const gboolean by_instance = seg->instance_map != NULL;
  const gboolean wide = by_instance || seg->format != GST_VIDEO_FORMAT_GRAY8;
  GstBuffer *source = by_instance ? seg->instance_map : seg->class_map;
  const gchar *what = by_instance ? "instance map" : "class map";
  g_autofree guint *values = g_new (guint, MAX (n_regions, 1));
  GstMapInfo map;

  for (guint r = 0; r < n_regions; r++)
    values[r] = by_instance ? regions[r].segment->id : regions[r].segment->label_id;
  if (source == NULL || !gst_buffer_map (source, &map, GST_MAP_READ))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "the segmentation meta's %s cannot be read", what);
      return FALSE;
    }
  if (map.size < (gsize) seg->mask_width * seg->mask_height * (wide ? 2 : 1))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "the segmentation meta's %s has %" G_GSIZE_FORMAT
                   " bytes, %ux%u pixels expected",
                   what, map.size, seg->mask_width, seg->mask_height);
      gst_buffer_unmap (source, &map);
      return FALSE;
    }
  umgclip_mask_pool (features->dense, features->grid_width, features->grid_height, features->dim,
                     map.data, wide, seg->mask_width, seg->mask_height, values, n_regions, out);
  gst_buffer_unmap (source, &map);
  return TRUE;
}

/* Global embeddings of the regions' crops, resized to the network input like whole frames: one
 * batched pass for every few crops of the frame, the crops cut and resized on the device (on the
 * host for the CPU backend), wherever the frame lies. */
static gboolean
crop_embeddings (UmgClipContext *context, const GstUmgClipFrame *frame,
                 const GstUmgClipFeatures *features, const Region *regions, guint n_regions,
                 gfloat *out, guint *host_copies, GError **error)
{
  g_autofree UmgClipCrop *crops = g_new (UmgClipCrop, MAX (n_regions, 1));
  g_autofree UmgClipImageRequest *requests = g_new0 (UmgClipImageRequest, MAX (n_regions, 1));

  for (guint r = 0; r < n_regions; r++)
    {
      umgclip_crop_for_box (frame->layout.format, frame->layout.width, frame->layout.height,
                            regions[r].x, regions[r].y, regions[r].w, regions[r].h, &crops[r]);
      requests[r].embedding = out + (gsize) r * features->dim;
    }
  if (!umgclip_encode_frames (context, &frame->layout, 1, crops, n_regions, features->input_width,
                              features->input_height, requests, error))
    return FALSE;
  for (guint r = 0; r < n_regions; r++)
    {
      umgclip_l2_normalize (out + (gsize) r * features->dim, features->dim);
      *host_copies += requests[r].host_copies;
    }
  return TRUE;
}

/* ---- writing tags ---- */

/* Tags at or above threshold, best first; the structure is made even when none passes, so
 * consumers can tell an analysed region from one this element did not look at. */
static GstStructure *
tags_structure (const gchar *model, const GstUmgClipLabels *labels, const guint *ids,
                const gfloat *scores, guint top_k, gdouble threshold, GstClockTime source_pts)
{
  g_autofree const gchar **names = g_new (const gchar *, top_k);
  g_autofree guint *kept_ids = g_new (guint, top_k);
  g_autofree gdouble *kept_scores = g_new (gdouble, top_k);
  guint kept = 0;
  for (guint k = 0; k < top_k; k++)
    {
      if (scores[k] < threshold)
        continue;
      names[kept] = labels->labels[ids[k]];
      kept_ids[kept] = ids[k];
      kept_scores[kept] = scores[k];
      kept++;
    }
  return gst_umgclip_tags_structure_new (model, names, kept_ids, kept_scores, kept, source_pts);
}

/* DL Streamer's "detection" structure, for ROIs made from segments. */
static GstStructure *
detection_structure (const Region *region, gint frame_width, gint frame_height)
{
  return gst_structure_new (
      "detection", "x_min", G_TYPE_DOUBLE, (gdouble) region->x / frame_width, "y_min",
      G_TYPE_DOUBLE, (gdouble) region->y / frame_height, "x_max", G_TYPE_DOUBLE,
      (gdouble) MIN (region->x + region->w, frame_width) / frame_width, "y_max", G_TYPE_DOUBLE,
      (gdouble) MIN (region->y + region->h, frame_height) / frame_height, "confidence",
      G_TYPE_DOUBLE, (gdouble) region->segment->score, "label", G_TYPE_STRING,
      region->segment_label, "label_id", G_TYPE_INT, (gint) region->segment->label_id, NULL);
}

static void
carried_tags_clear (gpointer data)
{
  CarriedTags *carried = data;
  g_clear_pointer (&carried->params, gst_structure_free);
}

static void
carried_free (gpointer data)
{
  g_array_unref (data);
}

/* ---- per frame ---- */

static gboolean
gst_umgclip_tag_wants_dense (GstUmgClipFilter *filter)
{
  GstUmgClipTag *tag = GST_UMGCLIP_TAG (filter);
  gboolean dense;
  GST_OBJECT_LOCK (tag);
  /* Segments are always mask-averaged in roi-align mode; the whole frame uses the global
   * embedding. */
  dense = tag->inference_region != GST_UMGCLIP_TAG_REGION_FULL_FRAME
          && tag->region_mode == GST_UMGCLIP_TAG_REGION_MODE_ROI_ALIGN;
  GST_OBJECT_UNLOCK (tag);
  return dense;
}

static gboolean
gst_umgclip_tag_infer (GstUmgClipFilter *filter, UmgClipContext *context,
                       const GstUmgClipFrame *frame, const GstUmgClipFeatures *features,
                       GstUmgClipResult *result, GError **error)
{
  GstUmgClipTag *tag = GST_UMGCLIP_TAG (filter);
  const UmgClipInfo *info = umgclip_context_get_info (context);
  const gint frame_width = GST_VIDEO_INFO_WIDTH (frame->info);
  const gint frame_height = GST_VIDEO_INFO_HEIGHT (frame->info);
  const gchar *model = gst_umgclip_filter_get_model_id (filter);
  const gdouble threshold = gst_umgclip_filter_get_threshold (filter);
  g_autoptr (GstUmgClipLabels) labels = NULL;
  g_auto (GStrv) object_classes = NULL;
  g_autoptr (GArray) regions = g_array_new (FALSE, TRUE, sizeof (Region));
  g_autofree gfloat *embeddings = NULL, *scores = NULL;
  g_autofree guint *ids = NULL;
  GArray *carried;
  GstUmgClipSegmentationMeta *seg = NULL;
  GstUmgClipTagRegion inference_region;
  GstUmgClipTagRegionMode region_mode;
  guint top_k;

  GST_OBJECT_LOCK (tag);
  inference_region = tag->inference_region;
  region_mode = tag->region_mode;
  top_k = tag->top_k;
  object_classes = parse_object_classes (tag->object_class);
  GST_OBJECT_UNLOCK (tag);

  labels = gst_umgclip_filter_get_labels (filter, context, error);
  if (labels == NULL)
    return FALSE;
  if (labels->n_labels == 0)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "no labels to tag with: the labels property is empty");
      return FALSE;
    }
  top_k = CLAMP (top_k, 1, labels->n_labels);

  switch (inference_region)
    {
    case GST_UMGCLIP_TAG_REGION_FULL_FRAME:
      {
        Region whole = { .roi_type = "frame", .w = frame_width, .h = frame_height };
        g_array_append_val (regions, whole);
        break;
      }
    case GST_UMGCLIP_TAG_REGION_ROI_LIST:
      collect_roi_list (tag, frame->buffer, object_classes, frame_width, frame_height, regions);
      break;
    case GST_UMGCLIP_TAG_REGION_SEGMENTS:
      seg = gst_buffer_get_umgclip_segmentation_meta (frame->buffer);
      if (seg == NULL)
        GST_LOG_OBJECT (tag, "no segmentation meta on this frame: nothing to tag");
      else
        collect_segments (frame->buffer, seg, object_classes, frame_width, frame_height, regions);
      break;
    }
  if (regions->len == 0)
    return TRUE;

  embeddings = g_new (gfloat, (gsize) regions->len * features->dim);
  if (inference_region == GST_UMGCLIP_TAG_REGION_FULL_FRAME)
    /* The crop of the whole frame is the frame: its global embedding, in both modes. */
    memcpy (embeddings, features->embedding, features->dim * sizeof (gfloat));
  else if (region_mode == GST_UMGCLIP_TAG_REGION_MODE_CROP)
    {
      if (!crop_embeddings (context, frame, features, (const Region *) regions->data, regions->len,
                            embeddings, &result->host_copies, error))
        return FALSE;
    }
  else if (features->dense == NULL)
    {
      /* region-mode changed between asking for features and now; the next frame has them. */
      GST_DEBUG_OBJECT (tag, "no dense map for this frame, regions left untagged");
      return TRUE;
    }
  else if (inference_region == GST_UMGCLIP_TAG_REGION_SEGMENTS)
    {
      if (!segment_embeddings (seg, features, (const Region *) regions->data, regions->len,
                               embeddings, error))
        return FALSE;
    }
  else
    for (guint r = 0; r < regions->len; r++)
      roi_align_embedding (features, frame_width, frame_height, &g_array_index (regions, Region, r),
                           embeddings + (gsize) r * features->dim);

  ids = g_new (guint, (gsize) regions->len * top_k);
  scores = g_new (gfloat, (gsize) regions->len * top_k);
  if (!umgclip_rank_labels (embeddings, regions->len, features->dim, labels->embeddings,
                            labels->n_labels, info->logit_scale, top_k, ids, scores, error))
    return FALSE;

  carried = g_array_new (FALSE, TRUE, sizeof (CarriedTags));
  g_array_set_clear_func (carried, carried_tags_clear);
  result->data = carried;
  result->free_data = carried_free;
  for (guint r = 0; r < regions->len; r++)
    {
      Region *region = &g_array_index (regions, Region, r);
      GstStructure *params
          = tags_structure (model, labels, ids + (gsize) r * top_k, scores + (gsize) r * top_k,
                            top_k, threshold, frame->pts);
      if (region->roi != NULL || region->detection)
        {
          /* an upstream ROI or detection: tagged on every frame that carries this result,
           * matched there by its box, clipped to the frame as apply () compares it */
          CarriedTags tags = {
            .detection = region->detection,
            .roi_type
            = region->roi != NULL ? region->roi->roi_type : g_quark_from_string (region->roi_type),
            .x = region->x,
            .y = region->y,
            .w = region->w,
            .h = region->h,
            .params = params,
          };
          g_array_append_val (carried, tags);
        }
      else
        {
          /* a new ROI, on the result: frames that carry it get it too; numbered by the base */
          GstVideoRegionOfInterestMeta *roi = gst_buffer_add_video_region_of_interest_meta (
              result->metas, region->roi_type, region->x, region->y, region->w, region->h);
          roi->id = -1;
          roi->parent_id = -1;
          if (region->segment != NULL)
            {
              gst_video_region_of_interest_meta_add_param (
                  roi, detection_structure (region, frame_width, frame_height));
              /* as umgclipseg's ROIs: umgclipoverlay draws the mask instead of a box */
              gst_umgclip_roi_set_segment (roi, region->segment->id);
            }
          gst_umgclip_roi_replace_param (roi, params);
        }
    }
  return TRUE;
}

static gdouble
intersection_over_union (const CarriedTags *a, gint bx, gint by, gint bw, gint bh)
{
  gint x0 = MAX (a->x, bx), y0 = MAX (a->y, by);
  gint x1 = MIN (a->x + a->w, bx + bw), y1 = MIN (a->y + a->h, by + bh);
  gdouble intersection, united;
  if (x1 <= x0 || y1 <= y0)
    return 0;
  intersection = (gdouble) (x1 - x0) * (y1 - y0);
  united = (gdouble) a->w * a->h + (gdouble) bw * bh - intersection;
  return united > 0 ? intersection / united : 0;
}

/* The carried tags of the kind (ROI or detection) and type that overlap this box most. */
static const CarriedTags *
best_carried (GArray *carried, gboolean detection, GQuark type, gint x, gint y, gint w, gint h)
{
  const CarriedTags *best = NULL;
  gdouble best_iou = CARRY_MIN_IOU;
  for (guint i = 0; i < carried->len; i++)
    {
      const CarriedTags *tags = &g_array_index (carried, CarriedTags, i);
      gdouble iou;
      if (tags->detection != detection || tags->roi_type != type)
        continue;
      iou = intersection_over_union (tags, x, y, w, h);
      if (iou >= best_iou)
        {
          best = tags;
          best_iou = iou;
        }
    }
  return best;
}

#ifdef HAVE_GST_ANALYTICS
/* GstAnalytics for what apply() tagged: the result's new ROIs (copied onto buffer by the base),
 * and each upstream detection of buffer that carried tags match. */
static void
apply_analytics (GstUmgClipFilter *filter, GstBuffer *buffer, const GstUmgClipResult *result)
{
  GArray *carried = result->data;
  g_autoptr (GArray) detections = NULL;
  gpointer state = NULL;
  GstMeta *meta;

  while ((meta = gst_buffer_iterate_meta_filtered (result->metas, &state,
                                                   GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)))
    {
      GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
      gst_umgclip_analytics_add_tags (buffer, roi->x, roi->y, roi->w, roi->h,
                                      gst_video_region_of_interest_meta_get_param (roi, "umgclip"),
                                      G_MAXUINT);
    }
  if (carried == NULL)
    return;
  detections = gst_umgclip_analytics_get_detections (
      buffer, GST_VIDEO_INFO_WIDTH (&GST_VIDEO_FILTER (filter)->in_info),
      GST_VIDEO_INFO_HEIGHT (&GST_VIDEO_FILTER (filter)->in_info));
  for (guint i = 0; i < detections->len; i++)
    {
      const GstUmgClipDetection *found = &g_array_index (detections, GstUmgClipDetection, i);
      const CarriedTags *best
          = best_carried (carried, TRUE, found->type, found->x, found->y, found->w, found->h);
      if (best != NULL)
        gst_umgclip_analytics_add_tags (buffer, found->x, found->y, found->w, found->h,
                                        best->params, found->od_id);
    }
}
#endif

/* The tags of the result's upstream regions onto the ROIs of buffer: each ROI takes those of
 * the best-overlapping region of its type. On the frame the result came from, that is the
 * ROI's own box; on frames that carry it (inference-interval, QoS, schedule=latest) a detector
 * upstream has usually moved its boxes a little. */
static void
gst_umgclip_tag_apply (GstUmgClipFilter *filter, GstBuffer *buffer, const GstUmgClipResult *result,
                       gboolean own)
{
  GArray *carried = result->data;
  const GstVideoInfo *info = &GST_VIDEO_FILTER (filter)->in_info;
  gpointer state = NULL;
  GstMeta *meta;

#ifdef HAVE_GST_ANALYTICS
  apply_analytics (filter, buffer, result);
#endif
  if (carried == NULL || carried->len == 0)
    return;
  while ((meta = gst_buffer_iterate_meta_filtered (buffer, &state,
                                                   GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)))
    {
      GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
      const CarriedTags *best;
      gint x, y, w, h;
      /* compared as collect_roi_list () tagged it: clipped to the frame */
      if (!clip_box (roi, GST_VIDEO_INFO_WIDTH (info), GST_VIDEO_INFO_HEIGHT (info), &x, &y, &w,
                     &h))
        continue;
      best = best_carried (carried, FALSE, roi->roi_type, x, y, w, h);
      if (best == NULL)
        continue;
      gst_umgclip_roi_replace_param (roi, gst_structure_copy (best->params));
#ifdef HAVE_GST_ANALYTICS
      gst_umgclip_analytics_add_tags (buffer, roi->x, roi->y, roi->w, roi->h, best->params,
                                      G_MAXUINT);
#endif
    }
}

/* ---- properties ---- */

static void
gst_umgclip_tag_set_property (GObject *object, guint prop_id, const GValue *value,
                              GParamSpec *pspec)
{
  GstUmgClipTag *tag = GST_UMGCLIP_TAG (object);
  GST_OBJECT_LOCK (tag);
  switch (prop_id)
    {
    case PROP_INFERENCE_REGION:
      tag->inference_region = g_value_get_enum (value);
      break;
    case PROP_OBJECT_CLASS:
      g_free (tag->object_class);
      tag->object_class = g_value_dup_string (value);
      break;
    case PROP_TOP_K:
      tag->top_k = g_value_get_uint (value);
      break;
    case PROP_REGION_MODE:
      tag->region_mode = g_value_get_enum (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
    }
  GST_OBJECT_UNLOCK (tag);
}

static void
gst_umgclip_tag_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstUmgClipTag *tag = GST_UMGCLIP_TAG (object);
  GST_OBJECT_LOCK (tag);
  switch (prop_id)
    {
    case PROP_INFERENCE_REGION:
      g_value_set_enum (value, tag->inference_region);
      break;
    case PROP_OBJECT_CLASS:
      g_value_set_string (value, tag->object_class);
      break;
    case PROP_TOP_K:
      g_value_set_uint (value, tag->top_k);
      break;
    case PROP_REGION_MODE:
      g_value_set_enum (value, tag->region_mode);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
    }
  GST_OBJECT_UNLOCK (tag);
}

static void
gst_umgclip_tag_finalize (GObject *object)
{
  GstUmgClipTag *tag = GST_UMGCLIP_TAG (object);
  g_free (tag->object_class);
  G_OBJECT_CLASS (gst_umgclip_tag_parent_class)->finalize (object);
}

static void
gst_umgclip_tag_init (GstUmgClipTag *tag)
{
  tag->inference_region = DEFAULT_INFERENCE_REGION;
  tag->top_k = DEFAULT_TOP_K;
  tag->region_mode = DEFAULT_REGION_MODE;
}

static void
gst_umgclip_tag_class_init (GstUmgClipTagClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstUmgClipFilterClass *filter_class = GST_UMGCLIP_FILTER_CLASS (klass);
  const GParamFlags flags = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;

  gobject_class->set_property = gst_umgclip_tag_set_property;
  gobject_class->get_property = gst_umgclip_tag_get_property;
  gobject_class->finalize = gst_umgclip_tag_finalize;

  g_object_class_install_property (
      gobject_class, PROP_INFERENCE_REGION,
      g_param_spec_enum ("inference-region", "Inference region",
                         "What is tagged: the whole frame (one new ROI of type \"frame\"), the "
                         "ROIs already on the buffer, or the segments of umgclipseg's meta (their "
                         "ROIs are updated, missing ones added)",
                         GST_TYPE_UMGCLIP_TAG_REGION, DEFAULT_INFERENCE_REGION,
                         flags | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      gobject_class, PROP_OBJECT_CLASS,
      g_param_spec_string ("object-class", "Object class",
                           "Comma-separated ROI types (or detection labels, or segment labels) to "
                           "tag; others are left alone. Empty: all",
                           NULL, flags | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (
      gobject_class, PROP_TOP_K,
      g_param_spec_uint ("top-k", "Top k",
                         "Number of best labels listed per region (at most the number of labels; "
                         "tags scoring below threshold are left out)",
                         1, G_MAXUINT, DEFAULT_TOP_K, flags | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (
      gobject_class, PROP_REGION_MODE,
      g_param_spec_enum ("region-mode", "Region mode",
                         "How a region is seen: pooled from the frame's dense feature map "
                         "(RoI-Align for boxes, mask average for segments; fast) or its crop "
                         "re-encoded through the vision tower (one model pass per region)",
                         GST_TYPE_UMGCLIP_TAG_REGION_MODE, DEFAULT_REGION_MODE,
                         flags | GST_PARAM_MUTABLE_READY));

  gst_element_class_set_static_metadata (
      element_class, "UMG-CLIP region tagger", "Filter/Analyzer/Video",
      "Ranks free-text labels for the whole frame, each region of interest or each segment, and "
      "writes them as the \"umgclip\" param of GstVideoRegionOfInterestMeta; video passes "
      "through unchanged",
      "gst-umgclip authors");

  filter_class->needs_labels = TRUE;
  filter_class->wants_dense = gst_umgclip_tag_wants_dense;
  filter_class->infer = gst_umgclip_tag_infer;
  filter_class->apply = gst_umgclip_tag_apply;

  gst_type_mark_as_plugin_api (GST_TYPE_UMGCLIP_TAG_REGION, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_UMGCLIP_TAG_REGION_MODE, 0);
}
