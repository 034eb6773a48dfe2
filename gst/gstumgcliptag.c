/* umgcliptag: open-vocabulary tags for regions of interest. Each region's embedding (RoI-Align
 * or mask-average on the dense map, or a re-encoded crop) is ranked against the labels and the
 * ranking written as the "umgclip" param structure of its GstVideoRegionOfInterestMeta. */
#include "gstumgcliptag.h"
#include "umgclipmeta.h"

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

/* Tags written on an upstream ROI, remembered for the frames until the next inference. */
typedef struct
{
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

  /* Streaming thread. */
  gboolean inferred; /* infer() ran on the current frame */
  GArray *carried;   /* of CarriedTags */
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
  const gchar *roi_type;             /* for a new meta */
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

/* Splits "person, car" into stripped, non-empty names; NULL when no filter is set. */
static GStrv
parse_object_classes (const gchar *text)
{
  g_auto (GStrv) parts = NULL;
  GPtrArray *names;
  if (text == NULL || *text == '\0')
    return NULL;
  parts = g_strsplit (text, ",", -1);
  names = g_ptr_array_new ();
  for (guint i = 0; parts[i] != NULL; i++)
    {
      gchar *name = g_strstrip (parts[i]);
      if (*name != '\0')
        g_ptr_array_add (names, g_strdup (name));
    }
  g_ptr_array_add (names, NULL);
  return (GStrv) g_ptr_array_free (names, FALSE);
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

static void
collect_roi_list (GstBuffer *buffer, GStrv object_classes, gint frame_width, gint frame_height,
                  GArray *regions)
{
  gpointer state = NULL;
  GstMeta *meta;
  while ((meta = gst_buffer_iterate_meta_filtered (buffer, &state,
                                                   GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)))
    {
      GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
      Region region = { .roi = roi, .x = roi->x, .y = roi->y, .w = roi->w, .h = roi->h };
      /* Boxes outside the frame have nothing to look at. */
      if (roi->w == 0 || roi->h == 0 || roi->x >= (guint) frame_width
          || roi->y >= (guint) frame_height || !roi_accepted (roi, object_classes))
        continue;
      g_array_append_val (regions, region);
    }
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

/* Mask-average of the dense map over each segment's pixels: every mask pixel adds its
 * bilinear weights on the grid to its segment, then each segment is one weighted sum of cells.
 * Regions that are not segments are left alone. */
static gboolean
segment_embeddings (const GstUmgClipSegmentationMeta *seg, const GstUmgClipFeatures *features,
                    const Region *regions, guint n_regions, gfloat *out, GError **error)
{
  const gsize n_cells = (gsize) features->grid_width * features->grid_height;
  const guint dim = features->dim;
  const gboolean by_instance = seg->instance_map != NULL;
  const gboolean wide_classes = seg->format != GST_VIDEO_FORMAT_GRAY8;
  g_autofree gint *region_of_value = g_new (gint, 65536);
  g_autofree gfloat *weights = g_new0 (gfloat, (gsize) n_regions * n_cells);
  GstMapInfo map;
  GstBuffer *source = by_instance ? seg->instance_map : seg->class_map;
  gsize bytes_per_pixel = by_instance || wide_classes ? 2 : 1;

  /* Panoptic: a pixel's segment is its instance id; semantic: its class is its segment. */
  for (guint v = 0; v < 65536; v++)
    region_of_value[v] = -1;
  for (guint r = 0; r < n_regions; r++)
    region_of_value[(by_instance ? regions[r].segment->id : regions[r].segment->label_id) & 0xffff]
        = (gint) r;

  if (source == NULL || !gst_buffer_map (source, &map, GST_MAP_READ))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "the segmentation meta's %s cannot be read",
                   by_instance ? "instance map" : "class map");
      return FALSE;
    }
  if (map.size < (gsize) seg->mask_width * seg->mask_height * bytes_per_pixel)
    {
      g_set_error (
          error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
          "the segmentation meta's %s has %" G_GSIZE_FORMAT " bytes, %ux%u pixels expected",
          by_instance ? "instance map" : "class map", map.size, seg->mask_width, seg->mask_height);
      gst_buffer_unmap (source, &map);
      return FALSE;
    }

  for (guint my = 0; my < seg->mask_height; my++)
    {
      gfloat cy = CLAMP ((my + 0.5f) * features->grid_height / seg->mask_height - 0.5f, 0.0f,
                         features->grid_height - 1.0f);
      gint y0 = (gint) cy, y1 = MIN (y0 + 1, (gint) features->grid_height - 1);
      gfloat wy = cy - y0;
      for (guint mx = 0; mx < seg->mask_width; mx++)
        {
          gsize pixel = (gsize) my * seg->mask_width + mx;
          guint value
              = bytes_per_pixel == 2 ? GST_READ_UINT16_LE (map.data + 2 * pixel) : map.data[pixel];
          gint r = region_of_value[value];
          gfloat cx, wx;
          gint x0, x1;
          gfloat *w;
          if (r < 0)
            continue;
          cx = CLAMP ((mx + 0.5f) * features->grid_width / seg->mask_width - 0.5f, 0.0f,
                      features->grid_width - 1.0f);
          x0 = (gint) cx;
          x1 = MIN (x0 + 1, (gint) features->grid_width - 1);
          wx = cx - x0;
          w = weights + (gsize) r * n_cells;
          w[y0 * features->grid_width + x0] += (1 - wy) * (1 - wx);
          w[y0 * features->grid_width + x1] += (1 - wy) * wx;
          w[y1 * features->grid_width + x0] += wy * (1 - wx);
          w[y1 * features->grid_width + x1] += wy * wx;
        }
    }
  gst_buffer_unmap (source, &map);

  for (guint r = 0; r < n_regions; r++)
    {
      const gfloat *w = weights + (gsize) r * n_cells;
      gfloat *embedding = out + (gsize) r * dim;
      memset (embedding, 0, dim * sizeof (gfloat));
      for (gsize cell = 0; cell < n_cells; cell++)
        if (w[cell] != 0)
          for (guint c = 0; c < dim; c++)
            embedding[c] += w[cell] * features->dense[cell * dim + c];
      umgclip_l2_normalize (embedding, dim);
    }
  return TRUE;
}

/* Global embedding of the region's crop, resized to the network input like a whole frame:
 * the runtime converts the sub-rectangle itself (on the device with Vulkan), given planes that
 * start at the crop's corner. */
static gboolean
crop_embedding (UmgClipContext *context, const GstVideoFrame *frame,
                const GstUmgClipFeatures *features, const Region *region, gfloat *out,
                GError **error)
{
  const GstVideoFormatInfo *format_info = frame->info.finfo;
  const GstVideoColorimetry *colorimetry = &frame->info.colorimetry;
  const gint frame_width = GST_VIDEO_FRAME_WIDTH (frame);
  const gint frame_height = GST_VIDEO_FRAME_HEIGHT (frame);
  UmgClipFrame crop = { 0 };
  UmgClipImageRequest request = { .embedding = out };
  gdouble kr, kb;
  gint x0, y0, x1, y1;

  if (!umgclip_pixel_format_parse (gst_video_format_to_string (GST_VIDEO_FRAME_FORMAT (frame)),
                                   &crop.format, error))
    return FALSE;
  x0 = CLAMP (region->x, 0, frame_width - 1);
  y0 = CLAMP (region->y, 0, frame_height - 1);
  x1 = CLAMP (region->x + region->w, x0 + 1, frame_width);
  y1 = CLAMP (region->y + region->h, y0 + 1, frame_height);
  /* Chroma planes are addressed from the crop's corner: keep it on a chroma sample. */
  if (GST_VIDEO_FORMAT_INFO_W_SUB (format_info, 1) > 0)
    x0 &= ~1;
  if (GST_VIDEO_FORMAT_INFO_H_SUB (format_info, 1) > 0)
    y0 &= ~1;
  crop.width = x1 - x0;
  crop.height = y1 - y0;

  for (guint plane = 0; plane < GST_VIDEO_FRAME_N_PLANES (frame) && plane < 3; plane++)
    {
      /* In every accepted format, plane p starts with component p. */
      const guint component = plane;
      const gint stride = GST_VIDEO_FRAME_PLANE_STRIDE (frame, plane);
      const gint pixel_stride = GST_VIDEO_FRAME_COMP_PSTRIDE (frame, component);
      const gint sub_x = GST_VIDEO_FORMAT_INFO_W_SUB (format_info, component);
      const gint sub_y = GST_VIDEO_FORMAT_INFO_H_SUB (format_info, component);
      crop.planes[plane] = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (frame, plane)
                           + (gsize) (y0 >> sub_y) * stride + (gsize) (x0 >> sub_x) * pixel_stride;
      crop.strides[plane] = stride;
    }
  /* As the base class reads whole frames: unknown matrices fall back to BT.601. */
  if (gst_video_color_matrix_get_Kr_Kb (colorimetry->matrix, &kr, &kb))
    {
      crop.kr = kr;
      crop.kb = kb;
    }
  crop.full_range = colorimetry->range == GST_VIDEO_COLOR_RANGE_0_255;

  if (!umgclip_encode_frame (context, &crop, features->input_width, features->input_height,
                             &request, error))
    return FALSE;
  umgclip_l2_normalize (out, features->dim);
  return TRUE;
}

/* ---- writing tags ---- */

/* Tags at or above threshold, best first; the structure is written even when none passes, so
 * consumers can tell an analysed region from one this element did not look at. */
static void
write_tags (GstVideoRegionOfInterestMeta *roi, const gchar *model, const GstUmgClipLabels *labels,
            const guint *ids, const gfloat *scores, guint top_k, gdouble threshold)
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
  gst_umgclip_roi_set_tags (roi, model, names, kept_ids, kept_scores, kept);
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
replace_param (GstVideoRegionOfInterestMeta *roi, const GstStructure *params)
{
  const gchar *name = gst_structure_get_name (params);
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
  gst_video_region_of_interest_meta_add_param (roi, gst_structure_copy (params));
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
gst_umgclip_tag_infer (GstUmgClipFilter *filter, GstVideoFrame *frame,
                       const GstUmgClipFeatures *features, GstBuffer *result, GError **error)
{
  GstUmgClipTag *tag = GST_UMGCLIP_TAG (filter);
  UmgClipContext *context = gst_umgclip_filter_get_context (filter);
  const UmgClipInfo *info = umgclip_context_get_info (context);
  const gint frame_width = GST_VIDEO_FRAME_WIDTH (frame);
  const gint frame_height = GST_VIDEO_FRAME_HEIGHT (frame);
  const gchar *model = gst_umgclip_filter_get_model_id (filter);
  const gdouble threshold = gst_umgclip_filter_get_threshold (filter);
  g_autoptr (GstUmgClipLabels) labels = NULL;
  g_auto (GStrv) object_classes = NULL;
  g_autoptr (GArray) regions = g_array_new (FALSE, TRUE, sizeof (Region));
  g_autofree gfloat *embeddings = NULL, *scores = NULL;
  g_autofree guint *ids = NULL;
  GstUmgClipSegmentationMeta *seg = NULL;
  GstUmgClipTagRegion inference_region;
  GstUmgClipTagRegionMode region_mode;
  guint top_k;

  tag->inferred = TRUE;
  g_array_set_size (tag->carried, 0);

  GST_OBJECT_LOCK (tag);
  inference_region = tag->inference_region;
  region_mode = tag->region_mode;
  top_k = tag->top_k;
  object_classes = parse_object_classes (tag->object_class);
  GST_OBJECT_UNLOCK (tag);

  labels = gst_umgclip_filter_get_labels (filter, error);
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
      collect_roi_list (frame->buffer, object_classes, frame_width, frame_height, regions);
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
      for (guint r = 0; r < regions->len; r++)
        if (!crop_embedding (context, frame, features, &g_array_index (regions, Region, r),
                             embeddings + (gsize) r * features->dim, error))
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

  for (guint r = 0; r < regions->len; r++)
    {
      Region *region = &g_array_index (regions, Region, r);
      GstVideoRegionOfInterestMeta *roi = region->roi;
      if (roi == NULL)
        {
          /* New metas go on result, so that frames skipped until the next inference get them
           * too; ids are numbered once the frame is complete. */
          roi = gst_buffer_add_video_region_of_interest_meta (result, region->roi_type, region->x,
                                                              region->y, region->w, region->h);
          roi->parent_id = -1;
          if (region->segment != NULL)
            gst_video_region_of_interest_meta_add_param (
                roi, detection_structure (region, frame_width, frame_height));
        }
      write_tags (roi, model, labels, ids + (gsize) r * top_k, scores + (gsize) r * top_k, top_k,
                  threshold);
      if (region->roi != NULL)
        {
          CarriedTags carried
              = { .roi_type = roi->roi_type, .x = roi->x, .y = roi->y, .w = roi->w, .h = roi->h };
          carried.params
              = gst_structure_copy (gst_video_region_of_interest_meta_get_param (roi, "umgclip"));
          g_array_append_val (tag->carried, carried);
        }
    }
  return TRUE;
}

static gdouble
intersection_over_union (const CarriedTags *a, const GstVideoRegionOfInterestMeta *b)
{
  gint x0 = MAX (a->x, (gint) b->x), y0 = MAX (a->y, (gint) b->y);
  gint x1 = MIN (a->x + a->w, (gint) (b->x + b->w)), y1 = MIN (a->y + a->h, (gint) (b->y + b->h));
  gdouble intersection, united;
  if (x1 <= x0 || y1 <= y0)
    return 0;
  intersection = (gdouble) (x1 - x0) * (y1 - y0);
  united = (gdouble) a->w * a->h + (gdouble) b->w * b->h - intersection;
  return united > 0 ? intersection / united : 0;
}

/* Upstream ROIs of a frame without inference (inference-interval, QoS) take the tags of the
 * best-overlapping region of the same type from the last inference: a detector upstream
 * usually runs on every frame, and its boxes move little in between. */
static void
carry_tags (GstUmgClipTag *tag, GstBuffer *buffer)
{
  gpointer state = NULL;
  GstMeta *meta;
  if (tag->carried->len == 0)
    return;
  while ((meta = gst_buffer_iterate_meta_filtered (buffer, &state,
                                                   GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)))
    {
      GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
      const CarriedTags *best = NULL;
      gdouble best_iou = CARRY_MIN_IOU;
      for (guint i = 0; i < tag->carried->len; i++)
        {
          const CarriedTags *carried = &g_array_index (tag->carried, CarriedTags, i);
          gdouble iou;
          if (carried->roi_type != roi->roi_type)
            continue;
          iou = intersection_over_union (carried, roi);
          if (iou >= best_iou)
            {
              best = carried;
              best_iou = iou;
            }
        }
      if (best != NULL)
        replace_param (roi, best->params);
    }
}

/* ROI metas get distinct ids 0..n-1, so that applications can enumerate them with
 * gst_buffer_get_video_region_of_interest_meta_id (). Ids already distinct and in range are
 * kept, first come first served, so upstream's parent ids stay valid; the others (ours, copied
 * from the result with its own numbering) take the free ones in buffer order. */
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

static GstFlowReturn
gst_umgclip_tag_transform_ip (GstBaseTransform *trans, GstBuffer *buffer)
{
  GstUmgClipTag *tag = GST_UMGCLIP_TAG (trans);
  GstFlowReturn ret;

  tag->inferred = FALSE;
  ret = GST_BASE_TRANSFORM_CLASS (gst_umgclip_tag_parent_class)->transform_ip (trans, buffer);
  if (ret != GST_FLOW_OK)
    return ret;
  if (!tag->inferred)
    carry_tags (tag, buffer);
  number_rois (buffer);
  return ret;
}

/* A new frame size: remembered boxes describe frames of the old size. */
static gboolean
gst_umgclip_tag_set_info (GstVideoFilter *video_filter, GstCaps *incaps, GstVideoInfo *in_info,
                          GstCaps *outcaps, GstVideoInfo *out_info)
{
  GstUmgClipTag *tag = GST_UMGCLIP_TAG (video_filter);
  g_array_set_size (tag->carried, 0);
  return GST_VIDEO_FILTER_CLASS (gst_umgclip_tag_parent_class)
      ->set_info (video_filter, incaps, in_info, outcaps, out_info);
}

static gboolean
gst_umgclip_tag_stop (GstBaseTransform *trans)
{
  g_array_set_size (GST_UMGCLIP_TAG (trans)->carried, 0);
  return GST_BASE_TRANSFORM_CLASS (gst_umgclip_tag_parent_class)->stop (trans);
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
  g_array_unref (tag->carried);
  G_OBJECT_CLASS (gst_umgclip_tag_parent_class)->finalize (object);
}

static void
gst_umgclip_tag_init (GstUmgClipTag *tag)
{
  tag->inference_region = DEFAULT_INFERENCE_REGION;
  tag->top_k = DEFAULT_TOP_K;
  tag->region_mode = DEFAULT_REGION_MODE;
  tag->carried = g_array_new (FALSE, TRUE, sizeof (CarriedTags));
  g_array_set_clear_func (tag->carried, carried_tags_clear);
}

static void
gst_umgclip_tag_class_init (GstUmgClipTagClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *transform_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstVideoFilterClass *video_filter_class = GST_VIDEO_FILTER_CLASS (klass);
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

  transform_class->transform_ip = GST_DEBUG_FUNCPTR (gst_umgclip_tag_transform_ip);
  transform_class->stop = GST_DEBUG_FUNCPTR (gst_umgclip_tag_stop);
  video_filter_class->set_info = GST_DEBUG_FUNCPTR (gst_umgclip_tag_set_info);

  filter_class->needs_labels = TRUE;
  filter_class->wants_dense = gst_umgclip_tag_wants_dense;
  filter_class->infer = gst_umgclip_tag_infer;

  gst_type_mark_as_plugin_api (GST_TYPE_UMGCLIP_TAG_REGION, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_UMGCLIP_TAG_REGION_MODE, 0);
}
