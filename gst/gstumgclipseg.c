/* umgclipseg: the dense feature map of each analysed frame (reused from umgclipenc upstream when
 * it has one) -> umgclip_segment -> segmentation meta, its custom twin, and ROIs for things. */
#include "gstumgclipseg.h"
#include "umgclipmeta.h"
#ifdef HAVE_GST_ANALYTICS
#include "gstumgclipanalytics.h"
#endif

#include <math.h>
#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_umgclip_seg_debug);
#define GST_CAT_DEFAULT gst_umgclip_seg_debug

#define DEFAULT_MODE GST_UMGCLIP_SEG_MODE_SEMANTIC
#define DEFAULT_STUFF_LABELS NULL
#define DEFAULT_MIN_AREA 0
#define DEFAULT_MASK_SIZE 0
#define DEFAULT_THING_AFFINITY UMGCLIP_DEFAULT_THING_AFFINITY
/* Automatic mask size: a quarter of the frame per side, the longer side at most this. */
#define AUTO_MASK_DIVISOR 4
#define AUTO_MASK_MAX_SIDE 256

enum
{
  PROP_0,
  PROP_MODE,
  PROP_STUFF_LABELS,
  PROP_MIN_AREA,
  PROP_MASK_SIZE,
  PROP_THING_AFFINITY,
};

struct _GstUmgClipSeg
{
  GstUmgClipFilter parent;

  /* Properties, under the object lock. */
  GstUmgClipSegMode mode;
  gchar *stuff_labels;
  guint min_area;
  guint mask_size;
  gdouble thing_affinity;
};

G_DEFINE_TYPE_WITH_CODE (GstUmgClipSeg, gst_umgclip_seg, GST_TYPE_UMGCLIP_FILTER,
                         GST_DEBUG_CATEGORY_INIT (gst_umgclip_seg_debug, "umgclipseg", 0,
                                                  "umgclip segmentation"))
GST_ELEMENT_REGISTER_DEFINE (umgclipseg, "umgclipseg", GST_RANK_NONE, GST_TYPE_UMGCLIP_SEG)

GType
gst_umgclip_seg_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_UMGCLIP_SEG_MODE_SEMANTIC, "Semantic: a class per pixel, one segment per label",
      "semantic" },
    { GST_UMGCLIP_SEG_MODE_PANOPTIC,
      "Panoptic: things split into instances (also attached as ROIs), stuff merged per label",
      "panoptic" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type))
    {
      GType registered = g_enum_register_static ("GstUmgClipSegMode", values);
      g_once_init_leave (&type, registered);
    }
  return type;
}

/* Mask resolution for a frame: the frame's aspect ratio with the longer side mask_size, or
 * with mask_size 0 a quarter of the frame capped at AUTO_MASK_MAX_SIDE. */
static void
choose_mask_size (guint mask_size, gint frame_width, gint frame_height, gint *mask_width,
                  gint *mask_height)
{
  gint longer = MAX (frame_width, frame_height);
  gint target = mask_size > 0 ? (gint) mask_size
                              : MIN (AUTO_MASK_MAX_SIDE,
                                     (longer + AUTO_MASK_DIVISOR - 1) / AUTO_MASK_DIVISOR);
  gdouble scale = (gdouble) target / longer;
  *mask_width = MAX (1, (gint) (frame_width * scale + 0.5));
  *mask_height = MAX (1, (gint) (frame_height * scale + 0.5));
}

static GstBuffer *
class_map_buffer (const UmgClipSegmentation *segmentation, GstVideoFormat format)
{
  const gsize n_pixels = (gsize) segmentation->width * segmentation->height;
  GstBuffer *buffer;
  GstMapInfo map;

  if (format == GST_VIDEO_FORMAT_GRAY8)
    {
      buffer = gst_buffer_new_allocate (NULL, n_pixels, NULL);
      gst_buffer_map (buffer, &map, GST_MAP_WRITE);
      for (gsize i = 0; i < n_pixels; i++)
        map.data[i] = segmentation->class_map[i] == UMGCLIP_CLASS_NONE
                          ? GST_UMGCLIP_CLASS_NONE_8
                          : (guint8) segmentation->class_map[i];
    }
  else
    {
      buffer = gst_buffer_new_allocate (NULL, n_pixels * 2, NULL);
      gst_buffer_map (buffer, &map, GST_MAP_WRITE);
      for (gsize i = 0; i < n_pixels; i++)
        GST_WRITE_UINT16_LE (map.data + 2 * i, segmentation->class_map[i] == UMGCLIP_CLASS_NONE
                                                   ? GST_UMGCLIP_CLASS_NONE_16
                                                   : segmentation->class_map[i]);
    }
  gst_buffer_unmap (buffer, &map);
  return buffer;
}

static GstBuffer *
instance_map_buffer (const UmgClipSegmentation *segmentation)
{
  const gsize n_pixels = (gsize) segmentation->width * segmentation->height;
  GstBuffer *buffer = gst_buffer_new_allocate (NULL, n_pixels * 2, NULL);
  GstMapInfo map;
  gst_buffer_map (buffer, &map, GST_MAP_WRITE);
  for (gsize i = 0; i < n_pixels; i++)
    GST_WRITE_UINT16_LE (map.data + 2 * i, segmentation->instance_map[i]);
  gst_buffer_unmap (buffer, &map);
  return buffer;
}

/* The frame pixels a mask box covers: outward rounding, so that the box contains every frame
 * pixel any of its mask pixels stands for. */
static void
mask_box_to_frame (const UmgClipSegment *segment, gint mask_width, gint mask_height,
                   gint frame_width, gint frame_height, GstUmgClipSegment *out)
{
  gint64 x0 = (gint64) segment->x * frame_width / mask_width;
  gint64 y0 = (gint64) segment->y * frame_height / mask_height;
  gint64 x1 = ((gint64) (segment->x + segment->w) * frame_width + mask_width - 1) / mask_width;
  gint64 y1 = ((gint64) (segment->y + segment->h) * frame_height + mask_height - 1) / mask_height;
  out->x = (gint) x0;
  out->y = (gint) y0;
  out->w = (gint) (MIN (x1, frame_width) - x0);
  out->h = (gint) (MIN (y1, frame_height) - y0);
}

/* One ROI for a thing segment, with the umgclip tag structure, DL Streamer's detection and the
 * segment's id. */
static void
add_thing_roi (GstBuffer *result, const GstUmgClipSegment *segment, const GstUmgClipLabels *labels,
               const gchar *model, gint frame_width, gint frame_height, GstClockTime source_pts)
{
  const gchar *label = labels->labels[segment->label_id];
  const gdouble score = segment->score;
  GstVideoRegionOfInterestMeta *roi = gst_buffer_add_video_region_of_interest_meta (
      result, label, segment->x, segment->y, segment->w, segment->h);
  /* numbered with the frame's other ROIs by the base class */
  roi->id = -1;
  gst_umgclip_roi_set_tags (roi, model, (const gchar *const *) &label, &segment->label_id, &score,
                            1, source_pts);
  gst_video_region_of_interest_meta_add_param (
      roi,
      gst_structure_new ("detection", "x_min", G_TYPE_DOUBLE, (gdouble) segment->x / frame_width,
                         "y_min", G_TYPE_DOUBLE, (gdouble) segment->y / frame_height, "x_max",
                         G_TYPE_DOUBLE, (gdouble) (segment->x + segment->w) / frame_width, "y_max",
                         G_TYPE_DOUBLE, (gdouble) (segment->y + segment->h) / frame_height,
                         "confidence", G_TYPE_DOUBLE, score, "label", G_TYPE_STRING, label,
                         "label_id", G_TYPE_INT, (gint) segment->label_id, NULL));
  /* which segment of the instance map it is: umgclipoverlay draws the mask instead of a box */
  gst_umgclip_roi_set_segment (roi, segment->id);
}

static gboolean
gst_umgclip_seg_wants_dense (GstUmgClipFilter *filter)
{
  return TRUE;
}

static gboolean
gst_umgclip_seg_infer (GstUmgClipFilter *filter, UmgClipContext *context,
                       const GstUmgClipFrame *frame, const GstUmgClipFeatures *features,
                       GstUmgClipResult *result, GError **error)
{
  GstUmgClipSeg *seg = GST_UMGCLIP_SEG (filter);
  const UmgClipInfo *info = umgclip_context_get_info (context);
  const gint frame_width = GST_VIDEO_INFO_WIDTH (frame->info);
  const gint frame_height = GST_VIDEO_INFO_HEIGHT (frame->info);
  const gchar *model = gst_umgclip_filter_get_model_id (filter);
  g_autoptr (GstUmgClipLabels) labels = NULL;
  g_auto (UmgClipSegmentation) segmentation = { 0 };
  g_autoptr (GstBuffer) class_map = NULL;
  g_autoptr (GstBuffer) instance_map = NULL;
  g_autofree gboolean *is_thing = NULL;
  g_autofree gchar *stuff_labels = NULL;
  GstUmgClipSegmentationMeta *meta;
  GstUmgClipSegMode mode;
  guint min_area, mask_size, min_mask_area;
  gdouble thing_affinity;
  gint mask_width, mask_height;
  gboolean panoptic;

  labels = gst_umgclip_filter_get_labels (filter, context, error);
  if (labels == NULL)
    return FALSE;
  if (labels->n_labels == 0)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "%s has no labels: set the labels property (comma-separated) or labels-file",
                   GST_ELEMENT_NAME (seg));
      return FALSE;
    }

  GST_OBJECT_LOCK (seg);
  mode = seg->mode;
  stuff_labels = g_strdup (seg->stuff_labels);
  min_area = seg->min_area;
  mask_size = seg->mask_size;
  thing_affinity = seg->thing_affinity;
  GST_OBJECT_UNLOCK (seg);
  panoptic = mode == GST_UMGCLIP_SEG_MODE_PANOPTIC;

  choose_mask_size (mask_size, frame_width, frame_height, &mask_width, &mask_height);
  /* min-area is in frame pixels; the runtime counts mask pixels. */
  min_mask_area = (guint) ceil ((gdouble) min_area * mask_width * mask_height
                                / ((gdouble) frame_width * frame_height));
  if (panoptic)
    is_thing = umgclip_things_from_stuff ((const gchar *const *) labels->labels, labels->n_labels,
                                          stuff_labels);

  if (!umgclip_segment (features->dense, features->grid_width, features->grid_height, features->dim,
                        labels->embeddings, labels->n_labels, is_thing, info->logit_scale,
                        mask_width, mask_height, (gfloat) gst_umgclip_filter_get_threshold (filter),
                        min_mask_area, (gfloat) thing_affinity, panoptic, &segmentation, error))
    return FALSE;

  /* The meta picks the same format from the number of labels. */
  class_map = class_map_buffer (&segmentation, labels->n_labels > 255 ? GST_VIDEO_FORMAT_GRAY16_LE
                                                                      : GST_VIDEO_FORMAT_GRAY8);
  if (panoptic)
    instance_map = instance_map_buffer (&segmentation);
  meta = gst_buffer_add_umgclip_segmentation_meta (
      result->metas, frame_width, frame_height, mask_width, mask_height,
      (const gchar *const *) labels->labels, class_map, instance_map);
  meta->source_pts = frame->pts;

  for (guint i = 0; i < segmentation.n_segments; i++)
    {
      const UmgClipSegment *found = &segmentation.segments[i];
      GstUmgClipSegment segment = {
        .id = found->id,
        .label_id = found->label_id,
        .score = found->score,
        .is_thing = found->is_thing,
        .area = found->area,
      };
      mask_box_to_frame (found, mask_width, mask_height, frame_width, frame_height, &segment);
      gst_umgclip_segmentation_meta_add_segment (meta, &segment);
      if (panoptic && segment.is_thing)
        add_thing_roi (result->metas, &segment, labels, model, frame_width, frame_height,
                       frame->pts);
    }
  gst_buffer_add_umgclip_segmentation_custom_meta (result->metas, meta);
  GST_LOG_OBJECT (seg, "%u segments on a %dx%d mask", segmentation.n_segments, mask_width,
                  mask_height);
  return TRUE;
}

#ifdef HAVE_GST_ANALYTICS
/* Things as object detections with their classification and, on 1.26, the segmentation mtd, on
 * every frame that carries the result. */
static void
gst_umgclip_seg_apply (GstUmgClipFilter *filter, GstBuffer *buffer, const GstUmgClipResult *result,
                       gboolean own)
{
  const GstUmgClipSegmentationMeta *meta = gst_buffer_get_umgclip_segmentation_meta (result->metas);
  if (meta != NULL)
    gst_umgclip_analytics_add_segmentation (buffer, meta);
}
#endif

static void
gst_umgclip_seg_set_property (GObject *object, guint prop_id, const GValue *value,
                              GParamSpec *pspec)
{
  GstUmgClipSeg *seg = GST_UMGCLIP_SEG (object);
  GST_OBJECT_LOCK (seg);
  switch (prop_id)
    {
    case PROP_MODE:
      seg->mode = g_value_get_enum (value);
      break;
    case PROP_STUFF_LABELS:
      g_free (seg->stuff_labels);
      seg->stuff_labels = g_value_dup_string (value);
      break;
    case PROP_MIN_AREA:
      seg->min_area = g_value_get_uint (value);
      break;
    case PROP_MASK_SIZE:
      seg->mask_size = g_value_get_uint (value);
      break;
    case PROP_THING_AFFINITY:
      seg->thing_affinity = g_value_get_double (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
    }
  GST_OBJECT_UNLOCK (seg);
}

static void
gst_umgclip_seg_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstUmgClipSeg *seg = GST_UMGCLIP_SEG (object);
  GST_OBJECT_LOCK (seg);
  switch (prop_id)
    {
    case PROP_MODE:
      g_value_set_enum (value, seg->mode);
      break;
    case PROP_STUFF_LABELS:
      g_value_set_string (value, seg->stuff_labels);
      break;
    case PROP_MIN_AREA:
      g_value_set_uint (value, seg->min_area);
      break;
    case PROP_MASK_SIZE:
      g_value_set_uint (value, seg->mask_size);
      break;
    case PROP_THING_AFFINITY:
      g_value_set_double (value, seg->thing_affinity);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
    }
  GST_OBJECT_UNLOCK (seg);
}

static void
gst_umgclip_seg_finalize (GObject *object)
{
  GstUmgClipSeg *seg = GST_UMGCLIP_SEG (object);
  g_free (seg->stuff_labels);
  G_OBJECT_CLASS (gst_umgclip_seg_parent_class)->finalize (object);
}

static void
gst_umgclip_seg_init (GstUmgClipSeg *seg)
{
  seg->mode = DEFAULT_MODE;
  seg->stuff_labels = g_strdup (DEFAULT_STUFF_LABELS);
  seg->min_area = DEFAULT_MIN_AREA;
  seg->mask_size = DEFAULT_MASK_SIZE;
  seg->thing_affinity = DEFAULT_THING_AFFINITY;
}

static void
gst_umgclip_seg_class_init (GstUmgClipSegClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstUmgClipFilterClass *filter_class = GST_UMGCLIP_FILTER_CLASS (klass);
  const GParamFlags flags = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING;

  gobject_class->set_property = gst_umgclip_seg_set_property;
  gobject_class->get_property = gst_umgclip_seg_get_property;
  gobject_class->finalize = gst_umgclip_seg_finalize;

  g_object_class_install_property (
      gobject_class, PROP_MODE,
      g_param_spec_enum ("mode", "Mode",
                         "semantic: a class per pixel and one segment per label; panoptic: "
                         "things are split into instances, each also attached as a region of "
                         "interest, and stuff is merged per label",
                         GST_TYPE_UMGCLIP_SEG_MODE, DEFAULT_MODE, flags));
  g_object_class_install_property (
      gobject_class, PROP_STUFF_LABELS,
      g_param_spec_string ("stuff-labels", "Stuff labels",
                           "Comma-separated labels that are stuff (sky, road, grass: merged into "
                           "one segment per label in panoptic mode); every other label is a "
                           "thing, split into instances",
                           DEFAULT_STUFF_LABELS, flags));
  g_object_class_install_property (
      gobject_class, PROP_MIN_AREA,
      g_param_spec_uint ("min-area", "Minimum area",
                         "Segments smaller than this many frame pixels are dropped (their pixels "
                         "become unlabelled)",
                         0, G_MAXUINT, DEFAULT_MIN_AREA, flags));
  g_object_class_install_property (
      gobject_class, PROP_MASK_SIZE,
      g_param_spec_uint ("mask-size", "Mask size",
                         "Longer side in pixels of the class and instance maps, which keep the "
                         "frame's aspect ratio (the model's coarse grid is upsampled to it); 0 = "
                         "a quarter of the frame, at most 256",
                         0, 4096, DEFAULT_MASK_SIZE, flags));
  g_object_class_install_property (
      gobject_class, PROP_THING_AFFINITY,
      g_param_spec_double ("thing-affinity", "Thing affinity",
                           "Panoptic: touching thing instances whose mean features have at least "
                           "this cosine are one instance, with the label that holds most of "
                           "their probability (one object whose parts the labels split is one "
                           "thing); -1 joins every touching pair, above 1 none",
                           -1.0, 2.0, DEFAULT_THING_AFFINITY, flags));

  gst_element_class_set_static_metadata (
      element_class, "UMG-CLIP segmentation", "Filter/Analyzer/Video",
      "Segments each frame into the given free-text labels and attaches the class map, "
      "instance map and segment table as GstUmgClipSegmentationMeta (and the "
      "\"UmgClipSegmentation\" custom meta); in panoptic mode each thing is also a region of "
      "interest. Video passes through unchanged",
      "gst-umgclip authors");

  filter_class->needs_labels = TRUE;
  filter_class->wants_dense = gst_umgclip_seg_wants_dense;
  filter_class->infer = gst_umgclip_seg_infer;
#ifdef HAVE_GST_ANALYTICS
  filter_class->apply = gst_umgclip_seg_apply;
#endif

  gst_type_mark_as_plugin_api (GST_TYPE_UMGCLIP_SEG_MODE, 0);
}
