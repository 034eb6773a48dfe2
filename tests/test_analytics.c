/* The GstAnalytics entries of each element through GstHarness: umgclipenc's embedding tensor,
 * umgclipseg's detections, classifications and segmentation mask, umgcliptag's detections and
 * classifications, and umgcliptag on upstream detections (clipped, empty and outside boxes),
 * with the relations between them. Built only against gstreamer-analytics-1.0 >= 1.26.
 * Environment: UMGCLIP_TEST_MODEL (model directory), UMGCLIP_TEST_DEVICE. */
#include "element_test_util.h"

#include <gst/analytics/analytics.h>
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <math.h>
#include <string.h>

#include "umgclip.h"
#include "umgclipmeta.h"

#define N_LABELS 4
#define FRAME_CAPS "video/x-raw,format=RGB,width=64,height=48,framerate=30/1"
static const gchar *const label_list[N_LABELS] = { "cat", "dog", "car", "tree" };

static GstAnalyticsRelationMeta *
get_relations (GstBuffer *buffer)
{
  GstAnalyticsRelationMeta *meta = gst_buffer_get_analytics_relation_meta (buffer);
  fail_unless (meta != NULL, "no analytics relation meta");
  return meta;
}

static guint
count_mtds (GstAnalyticsRelationMeta *meta, GstAnalyticsMtdType type)
{
  gpointer state = NULL;
  GstAnalyticsMtd mtd;
  guint n = 0;
  while (gst_analytics_relation_meta_iterate (meta, &state, type, &mtd))
    n++;
  return n;
}

/* The one classification related to od: od CONTAINs it, it IS_PART_OF od. */
static GstAnalyticsClsMtd
classification_of (GstAnalyticsRelationMeta *meta, guint od_id)
{
  GstAnalyticsClsMtd cls, other;
  gpointer state = NULL;
  fail_unless (gst_analytics_relation_meta_get_direct_related (
                   meta, od_id, GST_ANALYTICS_REL_TYPE_CONTAIN,
                   gst_analytics_cls_mtd_get_mtd_type (), &state, &cls),
               "detection %u contains no classification", od_id);
  fail_if (gst_analytics_relation_meta_get_direct_related (
               meta, od_id, GST_ANALYTICS_REL_TYPE_CONTAIN, gst_analytics_cls_mtd_get_mtd_type (),
               &state, &other),
           "detection %u contains two classifications", od_id);
  fail_unless (gst_analytics_relation_meta_exist (meta, cls.id, od_id, 1,
                                                  GST_ANALYTICS_REL_TYPE_IS_PART_OF, NULL));
  return cls;
}

/* The classification holds the ROI's "umgclip" tags and scores, in order. */
static void
assert_cls_is_tags (GstAnalyticsClsMtd *cls, GstVideoRegionOfInterestMeta *roi)
{
  GstStructure *params = gst_video_region_of_interest_meta_get_param (roi, "umgclip");
  const GValue *tags, *scores;
  fail_unless (params != NULL);
  tags = gst_structure_get_value (params, "tags");
  scores = gst_structure_get_value (params, "scores");
  fail_unless (gst_value_array_get_size (tags) > 0);
  fail_unless_equals_int (gst_analytics_cls_mtd_get_length (cls), gst_value_array_get_size (tags));
  for (guint i = 0; i < gst_value_array_get_size (tags); i++)
    {
      fail_unless_equals_string (g_quark_to_string (gst_analytics_cls_mtd_get_quark (cls, i)),
                                 g_value_get_string (gst_value_array_get_value (tags, i)));
      fail_unless_equals_float (
          gst_analytics_cls_mtd_get_level (cls, i),
          (gfloat) g_value_get_double (gst_value_array_get_value (scores, i)));
    }
}

static GstVideoRegionOfInterestMeta *
only_roi (GstBuffer *buffer)
{
  gpointer state = NULL;
  GstMeta *meta = gst_buffer_iterate_meta_filtered (buffer, &state,
                                                    GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE);
  fail_unless (meta != NULL, "no ROI");
  fail_unless (
      gst_buffer_iterate_meta_filtered (buffer, &state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)
      == NULL);
  return (GstVideoRegionOfInterestMeta *) meta;
}

static GstElement *
make_element (const gchar *factory, const gchar *first_property, ...)
{
  GstElement *element = element_test_make (factory);
  va_list args;
  va_start (args, first_property);
  if (first_property != NULL)
    g_object_set_valist (G_OBJECT (element), first_property, args);
  va_end (args);
  return element;
}

/* ---- umgclipenc ---- */

GST_START_TEST (test_enc_tensor)
{
  GstHarness *harness
      = element_test_harness (make_element ("umgclipenc", "dense", FALSE, NULL),
                              "video/x-raw,format=RGB,width=48,height=32,framerate=30/1");
  GstBuffer *in = element_test_frame (harness, 2, 0), *out;
  GstTensorMeta *tensors;
  GstUmgClipEmbeddingMeta *embedding;
  const GstTensor *ours, *theirs;
  gsize upstream_dims[1] = { 3 };
  GstTensor **upstream = g_new (GstTensor *, 1);
  GstMapInfo map;

  /* an upstream tensor stays beside ours */
  upstream[0] = gst_tensor_new_simple (
      g_quark_from_static_string ("upstream"), GST_TENSOR_DATA_TYPE_UINT8,
      gst_buffer_new_allocate (NULL, 3, NULL), GST_TENSOR_DIM_ORDER_ROW_MAJOR, 1, upstream_dims);
  gst_tensor_meta_set (gst_buffer_add_tensor_meta (in), 1, upstream);
  out = element_test_push_pull (harness, in);

  embedding = gst_buffer_get_umgclip_embedding_meta (out);
  fail_unless (embedding != NULL);
  tensors = gst_buffer_get_tensor_meta (out);
  fail_unless (tensors != NULL);
  fail_unless_equals_int (tensors->num_tensors, 2);
  theirs = gst_tensor_meta_get (tensors, 0);
  fail_unless_equals_string (g_quark_to_string (theirs->id), "upstream");
  fail_unless_equals_int (
      gst_tensor_meta_get_index_from_id (tensors, g_quark_from_string ("umgclip-embedding")), 1);
  ours = gst_tensor_meta_get (tensors, 1);
  fail_unless_equals_int (ours->data_type, GST_TENSOR_DATA_TYPE_FLOAT32);
  fail_unless_equals_int (ours->dims_order, GST_TENSOR_DIM_ORDER_ROW_MAJOR);
  fail_unless_equals_int (ours->num_dims, 2);
  fail_unless_equals_int (ours->dims[0], 1);
  fail_unless_equals_int (ours->dims[1], embedding->dim);
  fail_unless (gst_buffer_map (ours->data, &map, GST_MAP_READ));
  fail_unless_equals_int (map.size, embedding->dim * sizeof (gfloat));
  fail_unless (memcmp (map.data, embedding->embedding, map.size) == 0);
  gst_buffer_unmap (ours->data, &map);
  gst_buffer_unref (out);
  gst_harness_teardown (harness);
}
GST_END_TEST;

/* ---- umgclipseg ---- */

/* A harness around a gst_parse_launch chain, fed 64x48 RGB at 30 fps. */
static GstHarness *
chain_harness (const gchar *description)
{
  GstHarness *harness = gst_harness_new_parse (description);
  gst_harness_set_src_caps_str (harness, FRAME_CAPS);
  return harness;
}

static GstHarness *
panoptic_harness (const gchar *caps, guint mask_size)
{
  GstHarness *harness = element_test_harness (
      make_element ("umgclipseg", "mode", 1, "labels", "sky,road,car,person", "stuff-labels",
                    "sky,road", "threshold", 0.0, "mask-size", mask_size, NULL),
      caps);
  return harness;
}

/* The segmentation mtd of the buffer, checked against our meta: one region per segment, region
 * ids = segment ids, a GRAY16 mask of the meta's size whose pixels are the segment ids, placed
 * over the whole frame. */
static GstAnalyticsSegmentationMtd
assert_segmentation (GstAnalyticsRelationMeta *relations, GstUmgClipSegmentationMeta *seg)
{
  GstAnalyticsSegmentationMtd segmentation;
  gpointer state = NULL;
  GstBuffer *mask;
  GstVideoMeta *video;
  GstMapInfo mask_map, class_map;
  gint x, y;
  guint w, h;
  const guint n_labels = g_strv_length (seg->labels);

  fail_unless (gst_analytics_relation_meta_iterate (
      relations, &state, gst_analytics_segmentation_mtd_get_mtd_type (), &segmentation));
  fail_unless_equals_int (gst_analytics_segmentation_mtd_get_region_count (&segmentation),
                          seg->segments->len);
  for (guint i = 0; i < seg->segments->len; i++)
    fail_unless_equals_int (gst_analytics_segmentation_mtd_get_region_id (&segmentation, i),
                            g_array_index (seg->segments, GstUmgClipSegment, i).id);
  mask = gst_analytics_segmentation_mtd_get_mask (&segmentation, &x, &y, &w, &h);
  fail_unless (mask != NULL);
  fail_unless_equals_int (x, 0);
  fail_unless_equals_int (y, 0);
  fail_unless_equals_int (w, seg->frame_width);
  fail_unless_equals_int (h, seg->frame_height);
  video = gst_buffer_get_video_meta (mask);
  fail_unless (video != NULL);
  fail_unless_equals_int (video->format, GST_VIDEO_FORMAT_GRAY16_LE);
  fail_unless_equals_int (video->width, seg->mask_width);
  fail_unless_equals_int (video->height, seg->mask_height);

  fail_unless (gst_buffer_map (mask, &mask_map, GST_MAP_READ));
  fail_unless (gst_buffer_map (seg->class_map, &class_map, GST_MAP_READ));
  for (gsize p = 0; p < (gsize) seg->mask_width * seg->mask_height; p++)
    {
      guint id = GST_READ_UINT16_LE (mask_map.data + 2 * p);
      guint label = seg->format == GST_VIDEO_FORMAT_GRAY8
                        ? class_map.data[p]
                        : GST_READ_UINT16_LE (class_map.data + 2 * p);
      if (id == 0)
        {
          fail_unless (label >= n_labels, "pixel %" G_GSIZE_FORMAT " has a label, no region", p);
          continue;
        }
      fail_unless (id <= seg->segments->len, "pixel %" G_GSIZE_FORMAT ": region %u", p, id);
      fail_unless_equals_int (g_array_index (seg->segments, GstUmgClipSegment, id - 1).label_id,
                              label);
    }
  gst_buffer_unmap (seg->class_map, &class_map);
  gst_buffer_unmap (mask, &mask_map);
  gst_buffer_unref (mask);
  return segmentation;
}

static gboolean
find_od_at (GstAnalyticsRelationMeta *relations, gint x, gint y, gint w, gint h)
{
  gpointer state = NULL;
  GstAnalyticsODMtd od;
  while (gst_analytics_relation_meta_iterate (relations, &state,
                                              gst_analytics_od_mtd_get_mtd_type (), &od))
    {
      gint ox, oy, ow, oh;
      gfloat confidence;
      fail_unless (gst_analytics_od_mtd_get_location (&od, &ox, &oy, &ow, &oh, &confidence));
      if (ox == x && oy == y && ow == w && oh == h)
        return TRUE;
    }
  return FALSE;
}

GST_START_TEST (test_seg_panoptic)
{
  GstHarness *harness = panoptic_harness (FRAME_CAPS, 0);
  GstBuffer *out = element_test_push_pull (harness, element_test_frame (harness, 4, 0));
  GstUmgClipSegmentationMeta *seg = gst_buffer_get_umgclip_segmentation_meta (out);
  GstAnalyticsRelationMeta *relations = get_relations (out);
  GstAnalyticsSegmentationMtd segmentation;
  guint n_things = 0;

  fail_unless (seg != NULL && seg->segments->len > 0);
  segmentation = assert_segmentation (relations, seg);
  for (guint i = 0; i < seg->segments->len; i++)
    {
      const GstUmgClipSegment *segment = &g_array_index (seg->segments, GstUmgClipSegment, i);
      GQuark label = g_quark_from_string (seg->labels[segment->label_id]);
      gpointer state = NULL;
      GstAnalyticsODMtd od;
      gboolean found = FALSE;
      if (!segment->is_thing)
        continue;
      n_things++;
      while (gst_analytics_relation_meta_iterate (relations, &state,
                                                  gst_analytics_od_mtd_get_mtd_type (), &od))
        {
          gint x, y, w, h;
          gfloat confidence;
          GstAnalyticsClsMtd cls;
          fail_unless (gst_analytics_od_mtd_get_location (&od, &x, &y, &w, &h, &confidence));
          if (x != segment->x || y != segment->y || w != segment->w || h != segment->h)
            continue;
          found = TRUE;
          fail_unless_equals_int (gst_analytics_od_mtd_get_obj_type (&od), label);
          fail_unless_equals_float (confidence, segment->score);
          cls = classification_of (relations, od.id);
          fail_unless_equals_int (gst_analytics_cls_mtd_get_length (&cls), 1);
          fail_unless_equals_int (gst_analytics_cls_mtd_get_quark (&cls, 0), label);
          fail_unless_equals_float (gst_analytics_cls_mtd_get_level (&cls, 0), segment->score);
          /* the detection and its classification are parts of the segmentation */
          fail_unless (gst_analytics_relation_meta_exist (relations, segmentation.id, od.id, 1,
                                                          GST_ANALYTICS_REL_TYPE_CONTAIN, NULL));
          fail_unless (gst_analytics_relation_meta_exist (relations, cls.id, segmentation.id, 1,
                                                          GST_ANALYTICS_REL_TYPE_IS_PART_OF, NULL));
        }
      fail_unless (found, "thing segment %u has no detection", segment->id);
    }
  fail_unless (n_things > 0, "the frame has no thing: the test sees no detection");
  fail_unless_equals_int (count_mtds (relations, gst_analytics_od_mtd_get_mtd_type ()), n_things);
  /* one classification per segment, stuff included */
  fail_unless_equals_int (count_mtds (relations, gst_analytics_cls_mtd_get_mtd_type ()),
                          seg->segments->len);
  gst_buffer_unref (out);
  gst_harness_teardown (harness);
}
GST_END_TEST;

/* Semantic mode: no instance map, so the mask is made from the class map; a mask of another size
 * than the frame is placed over the whole frame, as our meta's is. */
GST_START_TEST (test_seg_semantic_mask_size)
{
  GstHarness *harness
      = element_test_harness (make_element ("umgclipseg", "labels", "sky,road,car,person",
                                            "threshold", 0.0, "mask-size", 20, NULL),
                              "video/x-raw,format=RGB,width=80,height=48,framerate=30/1");
  GstBuffer *out = element_test_push_pull (harness, element_test_frame (harness, 3, 0));
  GstUmgClipSegmentationMeta *seg = gst_buffer_get_umgclip_segmentation_meta (out);
  GstAnalyticsRelationMeta *relations = get_relations (out);

  fail_unless (seg != NULL && seg->segments->len > 0);
  fail_unless (seg->instance_map == NULL);
  fail_unless_equals_int (seg->mask_width, 20);
  fail_unless_equals_int (seg->mask_height, 12);
  assert_segmentation (relations, seg);
  /* no things in semantic mode, so no detections */
  fail_unless_equals_int (count_mtds (relations, gst_analytics_od_mtd_get_mtd_type ()), 0);
  gst_buffer_unref (out);
  gst_harness_teardown (harness);
}
GST_END_TEST;

/* videoscale after umgclipseg: the segmentation mtd's mask keeps its size and is placed over
 * the scaled frame, and the detections' boxes follow the frame, as our meta's boxes do. */
GST_START_TEST (test_seg_scaled_downstream)
{
  g_autofree gchar *description = g_strdup_printf (
      "umgclipseg model=%s device=%s schedule=ordered mode=panoptic labels=sky,road,car,person "
      "stuff-labels=sky,road threshold=0 ! videoscale ! capsfilter "
      "caps=video/x-raw,width=128,height=96",
      element_test_model (), element_test_device ());
  GstHarness *harness = chain_harness (description);
  GstBuffer *out;
  GstUmgClipSegmentationMeta *seg;
  GstAnalyticsRelationMeta *relations;
  guint n_things = 0;

  out = element_test_push_pull (harness, element_test_frame (harness, 4, 0));
  seg = gst_buffer_get_umgclip_segmentation_meta (out);
  relations = get_relations (out);
  fail_unless (seg != NULL);
  fail_unless_equals_int (seg->frame_width, 128);
  fail_unless_equals_int (seg->frame_height, 96);
  assert_segmentation (relations, seg);
  for (guint i = 0; i < seg->segments->len; i++)
    {
      const GstUmgClipSegment *segment = &g_array_index (seg->segments, GstUmgClipSegment, i);
      if (segment->is_thing)
        {
          n_things++;
          fail_unless (find_od_at (relations, segment->x, segment->y, segment->w, segment->h),
                       "no detection at the scaled box of thing %u", segment->id);
        }
    }
  fail_unless (n_things > 0);
  gst_buffer_unref (out);
  gst_harness_teardown (harness);
}
GST_END_TEST;

/* ---- umgcliptag ---- */

static GstElement *
make_tagger (const gchar *first_property, ...)
{
  GstElement *element = element_test_make ("umgcliptag");
  va_list args;
  g_object_set (element, "labels", "cat,dog,car,tree", "threshold", 0.0, "input-size", 64, NULL);
  va_start (args, first_property);
  if (first_property != NULL)
    g_object_set_valist (G_OBJECT (element), first_property, args);
  va_end (args);
  return element;
}

GST_START_TEST (test_tag_full_frame)
{
  GstHarness *harness = element_test_harness (
      make_tagger ("top-k", 3, NULL), "video/x-raw,format=RGBx,width=64,height=48,framerate=30/1");
  GstBuffer *out = element_test_push_pull (harness, element_test_frame (harness, 1, 0));
  GstAnalyticsRelationMeta *relations = get_relations (out);
  GstVideoRegionOfInterestMeta *roi = only_roi (out);
  GstStructure *params = gst_video_region_of_interest_meta_get_param (roi, "umgclip");
  gpointer state = NULL;
  GstAnalyticsODMtd od;
  GstAnalyticsClsMtd cls;
  gint x, y, w, h;
  gfloat confidence;
  gdouble best;

  fail_unless_equals_int (count_mtds (relations, gst_analytics_od_mtd_get_mtd_type ()), 1);
  fail_unless_equals_int (count_mtds (relations, gst_analytics_cls_mtd_get_mtd_type ()), 1);
  fail_unless (gst_analytics_relation_meta_iterate (relations, &state,
                                                    gst_analytics_od_mtd_get_mtd_type (), &od));
  /* type: the best tag; box: the whole frame; confidence: the best score */
  fail_unless_equals_string (g_quark_to_string (gst_analytics_od_mtd_get_obj_type (&od)),
                             gst_structure_get_string (params, "label"));
  fail_unless (g_strv_contains (label_list, gst_structure_get_string (params, "label")));
  fail_unless (gst_analytics_od_mtd_get_location (&od, &x, &y, &w, &h, &confidence));
  fail_unless (x == 0 && y == 0 && w == 64 && h == 48, "box %d,%d %dx%d", x, y, w, h);
  fail_unless (gst_structure_get_double (params, "confidence", &best));
  fail_unless_equals_float (confidence, (gfloat) best);
  cls = classification_of (relations, od.id);
  fail_unless_equals_int (gst_analytics_cls_mtd_get_length (&cls), 3);
  assert_cls_is_tags (&cls, roi);
  gst_buffer_unref (out);
  gst_harness_teardown (harness);
}
GST_END_TEST;

static gfloat *
label_embeddings (guint *dim)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (UmgClipContext) context = NULL;
  const gchar *templates[] = { "a photo of a {}." };
  UmgClipDeviceKind kind;
  gint index;
  gfloat *out;
  fail_unless (umgclip_parse_device (element_test_device (), &kind, &index, &error));
  context = umgclip_context_new (element_test_model (), kind, index, &error);
  fail_unless (context != NULL, "%s", error != NULL ? error->message : "");
  *dim = umgclip_context_get_info (context)->embed_dim;
  out = g_new (gfloat, N_LABELS * *dim);
  fail_unless (umgclip_encode_labels (context, label_list, N_LABELS, templates, 1, out, &error),
               "%s", error != NULL ? error->message : "");
  return out;
}

static guint
add_od (GstAnalyticsRelationMeta *relations, const gchar *type, gint x, gint y, gint w, gint h)
{
  GstAnalyticsODMtd od;
  fail_unless (gst_analytics_relation_meta_add_od_mtd (relations, g_quark_from_string (type), x, y,
                                                       w, h, 0.9f, &od));
  return od.id;
}

/* The classification that umgcliptag related to an upstream detection, or FALSE. */
static gboolean
find_classification (GstAnalyticsRelationMeta *relations, guint od_id, GstAnalyticsClsMtd *cls)
{
  gpointer state = NULL;
  return gst_analytics_relation_meta_get_direct_related (
      relations, od_id, GST_ANALYTICS_REL_TYPE_CONTAIN, gst_analytics_cls_mtd_get_mtd_type (),
      &state, cls);
}

/* Upstream detections on a 64×64 frame whose left half (x < 32) is "cat" and right half "dog":
 * inside, partly outside on the right (clipped to the dog half), partly outside on the left
 * (clipped to the cat half), empty, and wholly outside. The clipped boxes are tagged like ROIs
 * at the clipped boxes; the others get nothing, and nothing crashes. */
GST_START_TEST (test_tag_upstream_detections)
{
  guint dim;
  g_autofree gfloat *labels = label_embeddings (&dim);
  GstHarness *harness
      = element_test_harness (make_tagger ("inference-region", 1, "top-k", 4, NULL),
                              "video/x-raw,format=RGBx,width=64,height=64,framerate=30/1");
  GstBuffer *in = element_test_frame (harness, 1, 0), *out, *reference_out;
  GstAnalyticsRelationMeta *relations = gst_buffer_add_analytics_relation_meta (in), *got;
  GstBuffer *reference = element_test_frame (harness, 1, 0);
  const guint inside = add_od (relations, "person", 36, 8, 20, 40);
  const guint right = add_od (relations, "car", 40, 10, 60, 30);
  const guint left = add_od (relations, "bike", -30, 0, 50, 64);
  const guint empty = add_od (relations, "person", 10, 10, 0, 20);
  const guint outside = add_od (relations, "car", 70, 70, 10, 10);
  const guint far_left = add_od (relations, "car", -40, 5, 30, 30);
  struct
  {
    guint od;
    const gchar *roi_type;
    gint x, y, w, h;
    const gchar *best;
  } clipped[] = {
    { inside, "person", 36, 8, 20, 40, "dog" },
    { right, "car", 40, 10, 24, 30, "dog" },
    { left, "bike", 0, 0, 20, 64, "cat" },
  };
  const guint rejected[] = { empty, outside, far_left };
  GstAnalyticsClsMtd cls;

  element_test_add_dense_meta (in, labels, dim, 64, 0, 1, 4);
  out = element_test_push_pull (harness, in);
  got = get_relations (out);
  /* no new detections, no new ROIs: the upstream ones carry the tags */
  fail_unless_equals_int (count_mtds (got, gst_analytics_od_mtd_get_mtd_type ()), 6);
  fail_unless_equals_int (count_mtds (got, gst_analytics_cls_mtd_get_mtd_type ()), 3);
  fail_unless (gst_buffer_get_meta (out, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE) == NULL);
  for (guint i = 0; i < G_N_ELEMENTS (rejected); i++)
    fail_if (find_classification (got, rejected[i], &cls), "detection %u was tagged", rejected[i]);

  /* the same frame with ROIs at the clipped boxes, through the same element */
  element_test_add_dense_meta (reference, labels, dim, 64, 0, 1, 4);
  for (guint i = 0; i < G_N_ELEMENTS (clipped); i++)
    gst_buffer_add_video_region_of_interest_meta (reference, clipped[i].roi_type, clipped[i].x,
                                                  clipped[i].y, clipped[i].w, clipped[i].h);
  reference_out = element_test_push_pull (harness, reference);
  for (guint i = 0; i < G_N_ELEMENTS (clipped); i++)
    {
      gpointer state = NULL;
      GstMeta *meta;
      GstVideoRegionOfInterestMeta *roi = NULL;
      while ((meta = gst_buffer_iterate_meta_filtered (reference_out, &state,
                                                       GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)))
        if (((GstVideoRegionOfInterestMeta *) meta)->roi_type
            == g_quark_from_string (clipped[i].roi_type))
          roi = (GstVideoRegionOfInterestMeta *) meta;
      fail_unless (roi != NULL);
      cls = classification_of (got, clipped[i].od);
      fail_unless_equals_string (g_quark_to_string (gst_analytics_cls_mtd_get_quark (&cls, 0)),
                                 clipped[i].best);
      assert_cls_is_tags (&cls, roi);
    }
  gst_buffer_unref (reference_out);
  gst_buffer_unref (out);
  gst_harness_teardown (harness);
}
GST_END_TEST;

/* object-class filters upstream detections on their type. */
GST_START_TEST (test_tag_detection_object_class)
{
  GstHarness *harness
      = element_test_harness (make_tagger ("inference-region", 1, "object-class", "person", NULL),
                              "video/x-raw,format=RGBx,width=64,height=64,framerate=30/1");
  GstBuffer *in = element_test_frame (harness, 1, 0), *out;
  GstAnalyticsRelationMeta *relations = gst_buffer_add_analytics_relation_meta (in), *got;
  const guint person = add_od (relations, "person", 0, 0, 32, 32);
  const guint car = add_od (relations, "car", 32, 32, 32, 32);
  GstAnalyticsClsMtd cls;

  out = element_test_push_pull (harness, in);
  got = get_relations (out);
  fail_unless (find_classification (got, person, &cls));
  fail_if (find_classification (got, car, &cls));
  fail_unless_equals_int (count_mtds (got, gst_analytics_cls_mtd_get_mtd_type ()), 1);
  gst_buffer_unref (out);
  gst_harness_teardown (harness);
}
GST_END_TEST;

/* inference-interval=2: the second frame carries the first one's tags. They go to the
 * detection of the same type that overlaps the tagged box enough (a car moved by two pixels),
 * not to a new one elsewhere or to one of another type in the car's old place. */
GST_START_TEST (test_tag_detections_carried)
{
  GstHarness *harness = element_test_harness (
      make_tagger ("inference-region", 1, "inference-interval", 2, NULL), FRAME_CAPS);
  GstBuffer *first = element_test_frame (harness, 1, 0),
            *second = element_test_frame (harness, 2, GST_SECOND / 30);
  GstAnalyticsRelationMeta *in_first = gst_buffer_add_analytics_relation_meta (first);
  GstAnalyticsRelationMeta *in_second = gst_buffer_add_analytics_relation_meta (second);
  const guint car_first = add_od (in_first, "car", 10, 10, 30, 20);
  const guint car_second = add_od (in_second, "car", 12, 11, 30, 20);
  const guint elsewhere = add_od (in_second, "car", 40, 30, 20, 16);
  const guint dog = add_od (in_second, "dog", 10, 10, 30, 20);
  GstBuffer *out_first, *out_second;
  GstAnalyticsClsMtd tags_first, tags_second, unused;

  out_first = element_test_push_pull (harness, first);
  out_second = element_test_push_pull (harness, second);
  tags_first = classification_of (get_relations (out_first), car_first);
  tags_second = classification_of (get_relations (out_second), car_second);
  fail_unless (gst_analytics_cls_mtd_get_length (&tags_first) > 0);
  fail_unless_equals_int (gst_analytics_cls_mtd_get_length (&tags_second),
                          gst_analytics_cls_mtd_get_length (&tags_first));
  for (gsize i = 0; i < gst_analytics_cls_mtd_get_length (&tags_first); i++)
    {
      fail_unless_equals_int (gst_analytics_cls_mtd_get_quark (&tags_second, i),
                              gst_analytics_cls_mtd_get_quark (&tags_first, i));
      fail_unless_equals_float (gst_analytics_cls_mtd_get_level (&tags_second, i),
                                gst_analytics_cls_mtd_get_level (&tags_first, i));
    }
  fail_if (find_classification (get_relations (out_second), elsewhere, &unused));
  fail_if (find_classification (get_relations (out_second), dog, &unused));
  gst_buffer_unref (out_first);
  gst_buffer_unref (out_second);
  gst_harness_teardown (harness);
}
GST_END_TEST;

/* Two taggers: the second (roi-list) tags the first one's frame ROI once, through the ROI, and
 * adds its classification to the first one's detection (typed by the first one's best tag). */
GST_START_TEST (test_tag_then_tag)
{
  g_autofree gchar *description = g_strdup_printf (
      "umgcliptag model=%s device=%s schedule=ordered labels=cat,dog,car threshold=0 top-k=3 ! "
      "umgcliptag model=%s device=%s schedule=ordered inference-region=roi-list "
      "labels=red,green threshold=0 top-k=2",
      element_test_model (), element_test_device (), element_test_model (), element_test_device ());
  GstHarness *harness = chain_harness (description);
  GstAnalyticsRelationMeta *relations;
  GstAnalyticsODMtd od;
  GstAnalyticsClsMtd cls;
  gpointer state = NULL, related = NULL;
  guint lengths = 0, n_cls = 0;
  GstBuffer *out;

  out = element_test_push_pull (harness, element_test_frame (harness, 2, 0));
  relations = get_relations (out);
  fail_unless_equals_int (count_mtds (relations, gst_analytics_od_mtd_get_mtd_type ()), 1);
  fail_unless_equals_int (count_mtds (relations, gst_analytics_cls_mtd_get_mtd_type ()), 2);
  fail_unless (gst_analytics_relation_meta_iterate (relations, &state,
                                                    gst_analytics_od_mtd_get_mtd_type (), &od));
  while (gst_analytics_relation_meta_get_direct_related (
      relations, od.id, GST_ANALYTICS_REL_TYPE_CONTAIN, gst_analytics_cls_mtd_get_mtd_type (),
      &related, &cls))
    {
      lengths += gst_analytics_cls_mtd_get_length (&cls);
      n_cls++;
    }
  fail_unless_equals_int (n_cls, 2);
  fail_unless_equals_int (lengths, 3 + 2);
  gst_buffer_unref (out);
  gst_harness_teardown (harness);
}
GST_END_TEST;

/* umgclipseg ! umgcliptag inference-region=segments: the tagger's classifications go to the
 * segmenter's detections (no second detection per thing); stuff segments get new ones. */
GST_START_TEST (test_seg_then_tag)
{
  g_autofree gchar *description = g_strdup_printf (
      "umgclipseg model=%s device=%s schedule=ordered mode=panoptic labels=sky,road,car,person "
      "stuff-labels=sky,road threshold=0 ! umgcliptag model=%s device=%s schedule=ordered "
      "inference-region=segments labels=red,green,blue threshold=0 top-k=2",
      element_test_model (), element_test_device (), element_test_model (), element_test_device ());
  GstHarness *harness = chain_harness (description);
  GstBuffer *out;
  GstUmgClipSegmentationMeta *seg;
  GstAnalyticsRelationMeta *relations;
  guint n_things = 0;

  out = element_test_push_pull (harness, element_test_frame (harness, 4, 0));
  seg = gst_buffer_get_umgclip_segmentation_meta (out);
  relations = get_relations (out);
  fail_unless (seg != NULL);
  for (guint i = 0; i < seg->segments->len; i++)
    n_things += g_array_index (seg->segments, GstUmgClipSegment, i).is_thing;
  fail_unless (n_things > 0);
  /* one detection per segment: the segmenter's for things, the tagger's for stuff */
  fail_unless_equals_int (count_mtds (relations, gst_analytics_od_mtd_get_mtd_type ()),
                          seg->segments->len);
  /* the segmenter's classification per segment, and the tagger's per segment */
  fail_unless_equals_int (count_mtds (relations, gst_analytics_cls_mtd_get_mtd_type ()),
                          2 * seg->segments->len);
  {
    gpointer state = NULL;
    GstAnalyticsODMtd od;
    while (gst_analytics_relation_meta_iterate (relations, &state,
                                                gst_analytics_od_mtd_get_mtd_type (), &od))
      {
        gpointer related = NULL;
        GstAnalyticsClsMtd cls;
        gboolean tagged = FALSE;
        while (gst_analytics_relation_meta_get_direct_related (
            relations, od.id, GST_ANALYTICS_REL_TYPE_CONTAIN, gst_analytics_cls_mtd_get_mtd_type (),
            &related, &cls))
          if (gst_analytics_cls_mtd_get_length (&cls) == 2)
            {
              const gchar *best = g_quark_to_string (gst_analytics_cls_mtd_get_quark (&cls, 0));
              fail_unless (g_str_equal (best, "red") || g_str_equal (best, "green")
                           || g_str_equal (best, "blue"));
              tagged = TRUE;
            }
        fail_unless (tagged, "detection %u has no tags", od.id);
      }
  }
  gst_buffer_unref (out);
  gst_harness_teardown (harness);
}
GST_END_TEST;

static Suite *
analytics_suite (void)
{
  Suite *suite = suite_create ("umgclip-analytics");
  TCase *tc = tcase_create ("general");
  tcase_set_timeout (tc, 240);
  suite_add_tcase (suite, tc);
  tcase_add_test (tc, test_enc_tensor);
  tcase_add_test (tc, test_seg_panoptic);
  tcase_add_test (tc, test_seg_semantic_mask_size);
  tcase_add_test (tc, test_seg_scaled_downstream);
  tcase_add_test (tc, test_tag_full_frame);
  tcase_add_test (tc, test_tag_upstream_detections);
  tcase_add_test (tc, test_tag_detection_object_class);
  tcase_add_test (tc, test_tag_detections_carried);
  tcase_add_test (tc, test_seg_then_tag);
  tcase_add_test (tc, test_tag_then_tag);
  return suite;
}

GST_CHECK_MAIN (analytics);
