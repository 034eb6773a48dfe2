/* umgclipseg through GstHarness and real pipelines: segmentation metas on every input format,
 * agreement with umgclip_segment on the same features, panoptic ROIs, labels changed while
 * playing, inference-interval, renegotiation, scaling downstream, errors and properties.
 * Environment: UMGCLIP_TEST_MODEL (model directory), UMGCLIP_TEST_DEVICE (cpu or vulkan). */
#include "element_test_util.h"

#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <glib/gstdio.h>
#include <math.h>
#include <unistd.h>
#include <string.h>

#include "umgclip.h"
#include "umgclipmeta.h"

static GstElement *
make_seg (const gchar *first_property, ...)
{
  GstElement *element = element_test_make ("umgclipseg");
  va_list args;
  va_start (args, first_property);
  if (first_property != NULL)
    g_object_set_valist (G_OBJECT (element), first_property, args);
  va_end (args);
  return element;
}

static GstUmgClipSegmentationMeta *
get_seg_meta (GstBuffer *buffer)
{
  GstUmgClipSegmentationMeta *meta = gst_buffer_get_umgclip_segmentation_meta (buffer);
  fail_unless (meta != NULL, "no segmentation meta");
  return meta;
}

/* Pushes one frame and returns the output buffer, which must carry a segmentation meta. */
static GstBuffer *
push_and_pull (GstHarness *harness, guint seed, GstClockTime pts)
{
  GstBuffer *out;
  fail_unless_equals_int (gst_harness_push (harness, element_test_frame (harness, seed, pts)),
                          GST_FLOW_OK);
  out = gst_harness_pull (harness);
  fail_unless (out != NULL);
  get_seg_meta (out);
  return out;
}

static const GstStructure *
get_custom_structure (GstBuffer *buffer)
{
  GstCustomMeta *custom
      = gst_buffer_get_custom_meta (buffer, GST_UMGCLIP_SEGMENTATION_CUSTOM_META_NAME);
  fail_unless (custom != NULL, "no custom segmentation meta");
  return gst_custom_meta_get_structure (custom);
}

/* The class map's label id at mask pixel i, or -1 for none. */
static gint
class_at (GstUmgClipSegmentationMeta *meta, const GstMapInfo *map, gsize i)
{
  if (meta->format == GST_VIDEO_FORMAT_GRAY8)
    return map->data[i] == GST_UMGCLIP_CLASS_NONE_8 ? -1 : map->data[i];
  return GST_READ_UINT16_LE (map->data + 2 * i) == GST_UMGCLIP_CLASS_NONE_16
             ? -1
             : GST_READ_UINT16_LE (map->data + 2 * i);
}

static void
assert_labels (GstUmgClipSegmentationMeta *meta, const GstStructure *custom, const gchar *expected)
{
  g_auto (GStrv) labels = g_strsplit (expected, ",", -1);
  const GValue *custom_labels = gst_structure_get_value (custom, "labels");
  fail_unless_equals_int (g_strv_length (meta->labels), g_strv_length (labels));
  fail_unless_equals_int (gst_value_array_get_size (custom_labels), g_strv_length (labels));
  for (guint i = 0; labels[i] != NULL; i++)
    {
      fail_unless_equals_string (meta->labels[i], labels[i]);
      fail_unless_equals_string (g_value_get_string (gst_value_array_get_value (custom_labels, i)),
                                 labels[i]);
    }
}

/* Structure every segmentation meta must have: map sizes, label ids in range, segment areas
 * equal to the pixels of their label (semantic) and boxes inside the frame. */
static void
assert_consistent (GstUmgClipSegmentationMeta *meta, gboolean panoptic)
{
  const guint n_labels = g_strv_length (meta->labels);
  const gsize n_pixels = (gsize) meta->mask_width * meta->mask_height;
  g_autofree guint *pixels_per_label = g_new0 (guint, n_labels);
  guint labelled = 0, area_sum = 0;
  GstMapInfo map;

  fail_unless_equals_int (meta->format,
                          n_labels > 255 ? GST_VIDEO_FORMAT_GRAY16_LE : GST_VIDEO_FORMAT_GRAY8);
  fail_unless_equals_int (gst_buffer_get_size (meta->class_map),
                          n_pixels * (meta->format == GST_VIDEO_FORMAT_GRAY8 ? 1 : 2));
  fail_unless (panoptic == (meta->instance_map != NULL));
  if (panoptic)
    fail_unless_equals_int (gst_buffer_get_size (meta->instance_map), n_pixels * 2);
  fail_unless (gst_buffer_map (meta->class_map, &map, GST_MAP_READ));
  for (gsize i = 0; i < n_pixels; i++)
    {
      gint label = class_at (meta, &map, i);
      fail_unless (label < (gint) n_labels);
      if (label >= 0)
        {
          pixels_per_label[label]++;
          labelled++;
        }
    }
  gst_buffer_unmap (meta->class_map, &map);

  for (guint s = 0; s < meta->segments->len; s++)
    {
      GstUmgClipSegment *segment = &g_array_index (meta->segments, GstUmgClipSegment, s);
      fail_unless_equals_int (segment->id, s + 1);
      fail_unless (segment->label_id < n_labels);
      fail_unless (segment->score > 0 && segment->score <= 1.0f);
      fail_unless (segment->area > 0);
      fail_unless (segment->x >= 0 && segment->y >= 0 && segment->w > 0 && segment->h > 0);
      fail_unless (segment->x + segment->w <= (gint) meta->frame_width);
      fail_unless (segment->y + segment->h <= (gint) meta->frame_height);
      if (!panoptic)
        {
          fail_unless (!segment->is_thing);
          fail_unless_equals_int (segment->area, pixels_per_label[segment->label_id]);
        }
      area_sum += segment->area;
    }
  fail_unless_equals_int (area_sum, labelled);
}

GST_START_TEST (test_every_format)
{
  const gchar *formats[] = { "RGB", "RGBA", "RGBx", "BGRx", "BGRA", "NV12", "I420" };

  for (guint f = 0; f < G_N_ELEMENTS (formats); f++)
    {
      g_autofree gchar *caps
          = g_strdup_printf ("video/x-raw,format=%s,width=50,height=38,framerate=30/1", formats[f]);
      GstHarness *harness = element_test_harness (
          make_seg ("labels", "cat, dog,tree", "threshold", 0.0, NULL), caps);
      GstBuffer *out = push_and_pull (harness, f, 0);
      GstUmgClipSegmentationMeta *meta = get_seg_meta (out);
      const GstStructure *custom = get_custom_structure (out);
      gint width = 0, height = 0, frame_width = 0, frame_height = 0;

      GST_INFO ("format %s", formats[f]);
      fail_unless_equals_int (gst_buffer_get_size (out),
                              gst_buffer_get_size (element_test_frame (harness, f, 0)));
      fail_unless_equals_int (meta->frame_width, 50);
      fail_unless_equals_int (meta->frame_height, 38);
      /* Automatic mask: a quarter of the frame, 50 / 4 rounded up, aspect kept. */
      fail_unless_equals_int (meta->mask_width, 13);
      fail_unless_equals_int (meta->mask_height, 10);
      assert_labels (meta, custom, "cat,dog,tree");
      assert_consistent (meta, FALSE);
      /* Threshold 0: every pixel has a label, and one segment per label present. */
      {
        guint area = 0;
        for (guint s = 0; s < meta->segments->len; s++)
          area += g_array_index (meta->segments, GstUmgClipSegment, s).area;
        fail_unless_equals_int (area, 13 * 10);
        fail_unless (meta->segments->len >= 1 && meta->segments->len <= 3);
      }
      fail_unless (gst_structure_get_int (custom, "width", &width));
      fail_unless (gst_structure_get_int (custom, "height", &height));
      fail_unless (gst_structure_get_int (custom, "frame-width", &frame_width));
      fail_unless (gst_structure_get_int (custom, "frame-height", &frame_height));
      fail_unless_equals_int (width, 13);
      fail_unless_equals_int (height, 10);
      fail_unless_equals_int (frame_width, 50);
      fail_unless_equals_int (frame_height, 38);
      fail_unless_equals_int (
          gst_value_array_get_size (gst_structure_get_value (custom, "segments")),
          meta->segments->len);
      fail_unless (gst_structure_has_field_typed (custom, "class-map", GST_TYPE_BUFFER));
      fail_unless (!gst_structure_has_field (custom, "instance-map"));
      /* Semantic mode makes no regions of interest. */
      fail_unless (gst_buffer_get_video_region_of_interest_meta (out) == NULL);
      gst_buffer_unref (out);
      gst_harness_teardown (harness);
    }
}
GST_END_TEST;

/* ROI metas of buffer indexed by id, which must be 0..n-1 without gaps. */
static GPtrArray *
rois_by_id (GstBuffer *buffer)
{
  GPtrArray *rois = g_ptr_array_new ();
  gpointer state = NULL;
  GstMeta *meta;
  guint n = 0;
  while ((meta = gst_buffer_iterate_meta_filtered (buffer, &state,
                                                   GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)))
    n++;
  g_ptr_array_set_size (rois, n);
  state = NULL;
  while ((meta = gst_buffer_iterate_meta_filtered (buffer, &state,
                                                   GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)))
    {
      GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
      fail_unless (roi->id >= 0 && roi->id < (gint) n, "ROI id %d of %u", roi->id, n);
      fail_unless (g_ptr_array_index (rois, roi->id) == NULL, "ROI id %d twice", roi->id);
      g_ptr_array_index (rois, roi->id) = roi;
    }
  return rois;
}

/* Runs umgclipenc ! umgclipseg on one frame, then umgclip_segment on the dense map umgclipenc
 * attached (the features umgclipseg reused) and compares everything the meta says. */
static void
check_against_runtime (gboolean panoptic)
{
  const gchar *labels[] = { "cat", "dog", "grass", "sky" };
  const gchar *template = "a photo of a {}.";
  const gboolean is_thing[] = { TRUE, TRUE, FALSE, FALSE };
  const gint frame_width = 64, frame_height = 48, min_area = 40;
  const gdouble threshold = 0.3;
  g_autofree gchar *description = g_strdup_printf (
      "umgclipenc model=%s device=%s schedule=ordered ! umgclipseg model=%s device=%s "
      "schedule=ordered labels=cat,dog,grass,sky stuff-labels=\"Sky, grass\" mode=%s threshold=%g "
      "min-area=%d mask-size=32 thing-affinity=-1",
      element_test_model (), element_test_device (), element_test_model (), element_test_device (),
      panoptic ? "panoptic" : "semantic", threshold, min_area);
  GstHarness *harness = gst_harness_new_parse (description);
  g_autoptr (GError) error = NULL;
  g_autoptr (UmgClipContext) context = NULL;
  g_auto (UmgClipSegmentation) expected = { 0 };
  g_autofree gfloat *label_embeddings = NULL;
  g_autoptr (GPtrArray) rois = NULL;
  GstUmgClipEmbeddingMeta *features;
  GstUmgClipSegmentationMeta *meta;
  UmgClipDeviceKind kind;
  GstBuffer *in, *out;
  GstMapInfo map;
  guint mask_min_area, n_things = 0, n_upstream_rois = 2;
  gint index, dim;

  fail_unless (umgclip_parse_device (element_test_device (), &kind, &index, &error));
  context = umgclip_context_new (element_test_model (), kind, index, &error);
  fail_unless (context != NULL, "%s", error != NULL ? error->message : "");
  dim = umgclip_context_get_info (context)->embed_dim;
  label_embeddings = g_new (gfloat, G_N_ELEMENTS (labels) * dim);
  fail_unless (umgclip_encode_labels (context, labels, G_N_ELEMENTS (labels), &template, 1,
                                      label_embeddings, &error),
               "%s", error != NULL ? error->message : "");

  gst_harness_set_src_caps_str (harness,
                                "video/x-raw,format=RGBx,width=64,height=48,framerate=30/1");
  in = element_test_frame (harness, 2, 0);
  /* Regions from an upstream detector: ours must be numbered after them. */
  for (guint i = 0; i < n_upstream_rois; i++)
    gst_buffer_add_video_region_of_interest_meta (in, "person", 4 * i, 4, 10, 10)->id = (gint) i;
  fail_unless_equals_int (gst_harness_push (harness, in), GST_FLOW_OK);
  out = gst_harness_pull (harness);
  features = gst_buffer_get_umgclip_embedding_meta (out);
  fail_unless (features != NULL && features->dense != NULL);
  meta = get_seg_meta (out);
  fail_unless_equals_int (meta->mask_width, 32);
  fail_unless_equals_int (meta->mask_height, 24);
  assert_labels (meta, get_custom_structure (out), "cat,dog,grass,sky");
  assert_consistent (meta, panoptic);

  /* min-area is in frame pixels: 40 of 64x48 are 10 of the 32x24 mask. */
  mask_min_area = 10;
  fail_unless (umgclip_segment (features->dense, features->grid_width, features->grid_height, dim,
                                label_embeddings, G_N_ELEMENTS (labels), is_thing,
                                umgclip_context_get_info (context)->logit_scale, 32, 24,
                                (gfloat) threshold, mask_min_area, -1.0f, panoptic, &expected,
                                &error),
               "%s", error != NULL ? error->message : "");

  fail_unless (gst_buffer_map (meta->class_map, &map, GST_MAP_READ));
  for (gsize i = 0; i < 32 * 24; i++)
    fail_unless_equals_int (class_at (meta, &map, i), expected.class_map[i] == UMGCLIP_CLASS_NONE
                                                          ? -1
                                                          : expected.class_map[i]);
  gst_buffer_unmap (meta->class_map, &map);
  if (panoptic)
    {
      fail_unless (gst_buffer_map (meta->instance_map, &map, GST_MAP_READ));
      for (gsize i = 0; i < 32 * 24; i++)
        fail_unless_equals_int (GST_READ_UINT16_LE (map.data + 2 * i), expected.instance_map[i]);
      gst_buffer_unmap (meta->instance_map, &map);
    }

  fail_unless_equals_int (meta->segments->len, expected.n_segments);
  for (guint s = 0; s < expected.n_segments; s++)
    {
      GstUmgClipSegment *segment = &g_array_index (meta->segments, GstUmgClipSegment, s);
      const UmgClipSegment *want = &expected.segments[s];
      fail_unless_equals_int (segment->id, want->id);
      fail_unless_equals_int (segment->label_id, want->label_id);
      fail_unless_equals_float (segment->score, want->score);
      fail_unless_equals_int (segment->is_thing, want->is_thing);
      fail_unless_equals_int (segment->area, want->area);
      fail_unless (segment->area >= mask_min_area);
      /* Mask pixels are 2x2 frame pixels here, so boxes scale exactly. */
      fail_unless_equals_int (segment->x, 2 * want->x);
      fail_unless_equals_int (segment->y, 2 * want->y);
      fail_unless_equals_int (segment->w, 2 * want->w);
      fail_unless_equals_int (segment->h, 2 * want->h);
      if (panoptic)
        fail_unless_equals_int (segment->is_thing, is_thing[segment->label_id]);
      n_things += segment->is_thing;
    }
  fail_unless (expected.n_segments >= 2, "too few segments (%u) to test", expected.n_segments);

  rois = rois_by_id (out);
  if (!panoptic)
    {
      fail_unless_equals_int (rois->len, n_upstream_rois);
      goto done;
    }
  fail_unless (n_things >= 1, "no thing segment to test");
  fail_unless_equals_int (rois->len, n_upstream_rois + n_things);
  for (guint s = 0, r = n_upstream_rois; s < meta->segments->len; s++)
    {
      GstUmgClipSegment *segment = &g_array_index (meta->segments, GstUmgClipSegment, s);
      GstVideoRegionOfInterestMeta *roi;
      GstStructure *tags, *detection;
      const gchar *label = labels[segment->label_id];
      gdouble confidence = 0, x_min = -1, y_min = -1, x_max = -1, y_max = -1;
      gint label_id = -1;
      gint tag_label_id = -1;
      const GValue *tag_list;

      if (!segment->is_thing)
        continue;
      roi = g_ptr_array_index (rois, r++);
      fail_unless_equals_string (g_quark_to_string (roi->roi_type), label);
      fail_unless_equals_int (roi->x, segment->x);
      fail_unless_equals_int (roi->y, segment->y);
      fail_unless_equals_int (roi->w, segment->w);
      fail_unless_equals_int (roi->h, segment->h);

      tags = gst_video_region_of_interest_meta_get_param (roi, "umgclip");
      fail_unless (tags != NULL);
      fail_unless_equals_string (gst_structure_get_string (tags, "label"), label);
      fail_unless (gst_structure_get_int (tags, "label_id", &tag_label_id));
      fail_unless_equals_int (tag_label_id, segment->label_id);
      fail_unless (gst_structure_get_double (tags, "confidence", &confidence));
      fail_unless (fabs (confidence - segment->score) < 1e-6);
      tag_list = gst_structure_get_value (tags, "tags");
      fail_unless (tag_list != NULL && gst_value_array_get_size (tag_list) >= 1);
      fail_unless_equals_string (g_value_get_string (gst_value_array_get_value (tag_list, 0)),
                                 label);

      detection = gst_video_region_of_interest_meta_get_param (roi, "detection");
      fail_unless (detection != NULL);
      fail_unless (gst_structure_get (detection, "x_min", G_TYPE_DOUBLE, &x_min, "y_min",
                                      G_TYPE_DOUBLE, &y_min, "x_max", G_TYPE_DOUBLE, &x_max,
                                      "y_max", G_TYPE_DOUBLE, &y_max, "confidence", G_TYPE_DOUBLE,
                                      &confidence, "label_id", G_TYPE_INT, &label_id, NULL));
      fail_unless (fabs (x_min - (gdouble) segment->x / frame_width) < 1e-9);
      fail_unless (fabs (y_min - (gdouble) segment->y / frame_height) < 1e-9);
      fail_unless (fabs (x_max - (gdouble) (segment->x + segment->w) / frame_width) < 1e-9);
      fail_unless (fabs (y_max - (gdouble) (segment->y + segment->h) / frame_height) < 1e-9);
      fail_unless (fabs (confidence - segment->score) < 1e-6);
      fail_unless_equals_int (label_id, segment->label_id);
      fail_unless_equals_string (gst_structure_get_string (detection, "label"), label);
    }
done:
  gst_buffer_unref (out);
  gst_harness_teardown (harness);
}

GST_START_TEST (test_semantic_matches_runtime)
{
  check_against_runtime (FALSE);
}
GST_END_TEST;

GST_START_TEST (test_panoptic_matches_runtime)
{
  check_against_runtime (TRUE);
}
GST_END_TEST;

GST_START_TEST (test_labels_changed_in_playing)
{
  GstHarness *harness
      = element_test_harness (make_seg ("labels", "cat,dog", "threshold", 0.0, NULL),
                              "video/x-raw,format=I420,width=40,height=40,framerate=30/1");
  GstBuffer *before = push_and_pull (harness, 1, 0), *after, *swapped;

  assert_labels (get_seg_meta (before), get_custom_structure (before), "cat,dog");
  assert_consistent (get_seg_meta (before), FALSE);
  g_object_set (harness->element, "labels", "red car, green tree ,blue sky", NULL);
  after = push_and_pull (harness, 1, GST_SECOND / 30);
  assert_labels (get_seg_meta (after), get_custom_structure (after), "red car,green tree,blue sky");
  assert_consistent (get_seg_meta (after), FALSE);

  /* The same frame with the two first labels swapped: the label embeddings are permuted, so
   * the class map must be the first one with ids 0 and 1 exchanged. */
  g_object_set (harness->element, "labels", "dog,cat", NULL);
  swapped = push_and_pull (harness, 1, 2 * GST_SECOND / 30);
  assert_labels (get_seg_meta (swapped), get_custom_structure (swapped), "dog,cat");
  {
    GstMapInfo a, b;
    fail_unless (gst_buffer_map (get_seg_meta (before)->class_map, &a, GST_MAP_READ));
    fail_unless (gst_buffer_map (get_seg_meta (swapped)->class_map, &b, GST_MAP_READ));
    fail_unless_equals_int (a.size, b.size);
    for (gsize i = 0; i < a.size; i++)
      fail_unless_equals_int (b.data[i], 1 - a.data[i]);
    gst_buffer_unmap (get_seg_meta (before)->class_map, &a);
    gst_buffer_unmap (get_seg_meta (swapped)->class_map, &b);
  }
  gst_buffer_unref (before);
  gst_buffer_unref (after);
  gst_buffer_unref (swapped);
  gst_harness_teardown (harness);
}
GST_END_TEST;

/* Skipped frames carry a copy of the last result: same maps, segments and ROIs. */
GST_START_TEST (test_inference_interval)
{
  g_autoptr (GstBus) bus = gst_bus_new ();
  GstElement *element = make_seg ("labels", "cat,dog,grass", "mode", 1, "threshold", 0.0,
                                  "inference-interval", 3, NULL);
  GstHarness *harness;
  GstBuffer *outs[4];

  gst_element_set_bus (element, bus);
  harness
      = element_test_harness (element, "video/x-raw,format=RGB,width=48,height=48,framerate=30/1");
  for (guint i = 0; i < 4; i++)
    outs[i] = push_and_pull (harness, 3 * i, i * GST_SECOND / 30);
  fail_unless_equals_int (element_test_count_inferences (bus), 2);

  for (guint i = 1; i < 3; i++)
    {
      GstUmgClipSegmentationMeta *computed = get_seg_meta (outs[0]),
                                 *carried = get_seg_meta (outs[i]);
      g_autoptr (GPtrArray) first_rois = rois_by_id (outs[0]);
      g_autoptr (GPtrArray) carried_rois = rois_by_id (outs[i]);
      GstMapInfo a;
      fail_unless (carried->class_map != computed->class_map);
      fail_unless (gst_buffer_map (computed->class_map, &a, GST_MAP_READ));
      fail_unless (gst_buffer_memcmp (carried->class_map, 0, a.data, a.size) == 0);
      gst_buffer_unmap (computed->class_map, &a);
      fail_unless (gst_buffer_map (computed->instance_map, &a, GST_MAP_READ));
      fail_unless (gst_buffer_memcmp (carried->instance_map, 0, a.data, a.size) == 0);
      gst_buffer_unmap (computed->instance_map, &a);
      fail_unless_equals_int (carried->segments->len, computed->segments->len);
      fail_unless (memcmp (carried->segments->data, computed->segments->data,
                           computed->segments->len * sizeof (GstUmgClipSegment))
                   == 0);
      fail_unless_equals_int (carried_rois->len, first_rois->len);
      for (guint r = 0; r < first_rois->len; r++)
        {
          GstVideoRegionOfInterestMeta *x = g_ptr_array_index (first_rois, r);
          GstVideoRegionOfInterestMeta *y = g_ptr_array_index (carried_rois, r);
          fail_unless (x->roi_type == y->roi_type && x->x == y->x && x->y == y->y && x->w == y->w
                       && x->h == y->h);
        }
      get_custom_structure (outs[i]);
    }
  for (guint i = 0; i < 4; i++)
    gst_buffer_unref (outs[i]);
  gst_element_set_bus (element, NULL);
  gst_harness_teardown (harness);
}
GST_END_TEST;

GST_START_TEST (test_renegotiation)
{
  GstHarness *harness = element_test_harness (
      make_seg ("labels", "cat,dog", "mode", 1, "threshold", 0.0, "inference-interval", 100, NULL),
      "video/x-raw,format=RGB,width=48,height=40,framerate=30/1");
  GstBuffer *before = push_and_pull (harness, 2, 0), *after;
  GstUmgClipSegmentationMeta *meta = get_seg_meta (before);

  fail_unless_equals_int (meta->frame_width, 48);
  fail_unless_equals_int (meta->mask_width, 12);
  fail_unless_equals_int (meta->mask_height, 10);
  gst_harness_set_src_caps_str (harness,
                                "video/x-raw,format=NV12,width=96,height=80,framerate=30/1");
  after = push_and_pull (harness, 2, GST_SECOND / 30);
  meta = get_seg_meta (after);
  /* A new size runs inference again although the interval has not passed. */
  fail_unless_equals_int (meta->frame_width, 96);
  fail_unless_equals_int (meta->frame_height, 80);
  fail_unless_equals_int (meta->mask_width, 24);
  fail_unless_equals_int (meta->mask_height, 20);
  assert_consistent (meta, TRUE);
  for (guint s = 0; s < meta->segments->len; s++)
    {
      GstUmgClipSegment *segment = &g_array_index (meta->segments, GstUmgClipSegment, s);
      fail_unless (segment->x + segment->w <= 96 && segment->y + segment->h <= 80);
    }
  gst_buffer_unref (before);
  gst_buffer_unref (after);
  gst_harness_teardown (harness);
}
GST_END_TEST;

GST_START_TEST (test_mask_size_and_min_area)
{
  GstHarness *harness;
  GstBuffer *out;
  GstUmgClipSegmentationMeta *meta;
  GstMapInfo map;

  harness = element_test_harness (
      make_seg ("labels", "cat,dog", "mask-size", 20, "threshold", 0.0, NULL),
      "video/x-raw,format=BGRA,width=64,height=48,framerate=30/1");
  out = push_and_pull (harness, 1, 0);
  meta = get_seg_meta (out);
  fail_unless_equals_int (meta->mask_width, 20);
  fail_unless_equals_int (meta->mask_height, 15);
  assert_consistent (meta, FALSE);
  gst_buffer_unref (out);
  gst_harness_teardown (harness);

  /* The automatic size stops at 256 on the longer side. */
  harness = element_test_harness (make_seg ("labels", "cat,dog", NULL),
                                  "video/x-raw,format=RGB,width=2000,height=1000,framerate=30/1");
  out = push_and_pull (harness, 1, 0);
  meta = get_seg_meta (out);
  fail_unless_equals_int (meta->mask_width, 256);
  fail_unless_equals_int (meta->mask_height, 128);
  gst_buffer_unref (out);
  gst_harness_teardown (harness);

  /* Nothing is as large as the whole frame plus one pixel: every segment goes. */
  harness = element_test_harness (
      make_seg ("labels", "cat,dog", "min-area", 64 * 48 + 1, "threshold", 0.0, "mode", 1, NULL),
      "video/x-raw,format=RGB,width=64,height=48,framerate=30/1");
  out = push_and_pull (harness, 1, 0);
  meta = get_seg_meta (out);
  fail_unless_equals_int (meta->segments->len, 0);
  fail_unless (gst_buffer_get_video_region_of_interest_meta (out) == NULL);
  fail_unless (gst_buffer_map (meta->class_map, &map, GST_MAP_READ));
  for (gsize i = 0; i < map.size; i++)
    fail_unless_equals_int (map.data[i], GST_UMGCLIP_CLASS_NONE_8);
  gst_buffer_unmap (meta->class_map, &map);
  gst_buffer_unref (out);
  gst_harness_teardown (harness);
}
GST_END_TEST;

static GstBuffer *
pull_buffer (GstElement *pipeline, const gchar *sink_name)
{
  g_autoptr (GstElement) sink = gst_bin_get_by_name (GST_BIN (pipeline), sink_name);
  GstSample *sample = NULL;
  GstBuffer *buffer;
  g_signal_emit_by_name (sink, "pull-sample", &sample);
  fail_unless (sample != NULL, "no sample from %s", sink_name);
  buffer = gst_buffer_ref (gst_sample_get_buffer (sample));
  gst_sample_unref (sample);
  return buffer;
}

/* A real pipeline: the meta goes through videoconvert and videoscale (2x) and comes out with
 * the frame size and boxes doubled, maps unchanged, ROIs scaled and detections still
 * normalised. */
GST_START_TEST (test_meta_survives_convert_and_scale)
{
  g_autofree gchar *description = g_strdup_printf (
      "videotestsrc num-buffers=1 pattern=smpte ! video/x-raw,format=RGB,width=64,height=48 "
      "! umgclipseg model=%s device=%s labels=cat,dog,sky stuff-labels=sky mode=panoptic "
      "threshold=0 ! tee name=t "
      "t. ! queue ! appsink name=before sync=false "
      "t. ! queue ! videoconvert ! videoscale ! video/x-raw,format=I420,width=128,height=96 "
      "! appsink name=after sync=false",
      element_test_model (), element_test_device ());
  g_autoptr (GError) error = NULL;
  GstElement *pipeline = gst_parse_launch (description, &error);
  GstBuffer *before, *after;
  GstUmgClipSegmentationMeta *small, *large;
  const GstStructure *custom;
  g_autoptr (GPtrArray) small_rois = NULL;
  g_autoptr (GPtrArray) large_rois = NULL;
  gint frame_width = 0, width = 0;
  GstMapInfo map;

  fail_unless (pipeline != NULL, "%s", error != NULL ? error->message : "");
  fail_unless (gst_element_set_state (pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  before = pull_buffer (pipeline, "before");
  after = pull_buffer (pipeline, "after");

  small = get_seg_meta (before);
  large = get_seg_meta (after);
  fail_unless_equals_int (small->frame_width, 64);
  fail_unless_equals_int (large->frame_width, 128);
  fail_unless_equals_int (large->frame_height, 96);
  fail_unless_equals_int (large->mask_width, small->mask_width);
  fail_unless_equals_int (large->mask_height, small->mask_height);
  fail_unless (gst_buffer_map (small->class_map, &map, GST_MAP_READ));
  fail_unless (gst_buffer_memcmp (large->class_map, 0, map.data, map.size) == 0);
  gst_buffer_unmap (small->class_map, &map);
  fail_unless_equals_int (large->segments->len, small->segments->len);
  fail_unless (small->segments->len > 0);
  for (guint s = 0; s < small->segments->len; s++)
    {
      GstUmgClipSegment *a = &g_array_index (small->segments, GstUmgClipSegment, s);
      GstUmgClipSegment *b = &g_array_index (large->segments, GstUmgClipSegment, s);
      fail_unless_equals_int (b->x, 2 * a->x);
      fail_unless_equals_int (b->y, 2 * a->y);
      fail_unless_equals_int (b->w, 2 * a->w);
      fail_unless_equals_int (b->h, 2 * a->h);
      fail_unless_equals_int (b->area, a->area);
      fail_unless_equals_int (b->label_id, a->label_id);
    }
  custom = get_custom_structure (after);
  fail_unless (gst_structure_get_int (custom, "frame-width", &frame_width));
  fail_unless (gst_structure_get_int (custom, "width", &width));
  fail_unless_equals_int (frame_width, 128);
  fail_unless_equals_int (width, small->mask_width);

  small_rois = rois_by_id (before);
  large_rois = rois_by_id (after);
  fail_unless_equals_int (large_rois->len, small_rois->len);
  for (guint r = 0; r < small_rois->len; r++)
    {
      GstVideoRegionOfInterestMeta *a = g_ptr_array_index (small_rois, r);
      GstVideoRegionOfInterestMeta *b = g_ptr_array_index (large_rois, r);
      GstStructure *detection = gst_video_region_of_interest_meta_get_param (b, "detection");
      gdouble x_max = 0;
      fail_unless (b->roi_type == a->roi_type);
      fail_unless_equals_int (b->x, 2 * a->x);
      fail_unless_equals_int (b->y, 2 * a->y);
      fail_unless_equals_int (b->w, 2 * a->w);
      fail_unless_equals_int (b->h, 2 * a->h);
      /* GStreamer 1.22's ROI scale transform drops the param structures (copies keep them);
       * where they survive, the normalised box must not have moved. */
      if (detection != NULL)
        {
          fail_unless (gst_structure_get_double (detection, "x_max", &x_max));
          fail_unless (fabs (x_max - (gdouble) (a->x + a->w) / 64) < 1e-9);
        }
    }

  gst_buffer_unref (before);
  gst_buffer_unref (after);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
}
GST_END_TEST;

GST_START_TEST (test_errors_name_the_problem)
{
  element_test_assert_start_error (make_seg (NULL), "labels");
  element_test_assert_start_error (make_seg ("labels", " , ,", NULL), "labels");
  element_test_assert_start_error (make_seg ("labels-file", "/nonexistent/seg-labels.txt", NULL),
                                   "/nonexistent/seg-labels.txt");
}
GST_END_TEST;

/* Clearing the labels while playing stops the stream with an error naming element and
 * property, instead of attaching an empty result. */
GST_START_TEST (test_labels_cleared_in_playing)
{
  g_autoptr (GstBus) bus = gst_bus_new ();
  GstElement *element = make_seg ("labels", "cat,dog", NULL);
  GstHarness *harness;
  GstBuffer *out;
  GstMessage *message;
  g_autoptr (GError) error = NULL;
  g_autofree gchar *debug = NULL;

  gst_element_set_bus (element, bus);
  harness
      = element_test_harness (element, "video/x-raw,format=RGB,width=32,height=32,framerate=30/1");
  out = push_and_pull (harness, 0, 0);
  gst_buffer_unref (out);
  /* a failing inference is a warning, and with max-errors=1 the first one is an error */
  g_object_set (element, "labels", "", "max-errors", 1, NULL);
  fail_unless_equals_int (
      gst_harness_push (harness, element_test_frame (harness, 1, GST_SECOND / 30)), GST_FLOW_OK);
  /* the frame still goes on, without a result */
  out = gst_harness_pull (harness);
  fail_unless (out != NULL && gst_buffer_get_umgclip_segmentation_meta (out) == NULL);
  gst_buffer_unref (out);
  fail_unless_equals_int (
      gst_harness_push (harness, element_test_frame (harness, 2, GST_SECOND / 15)), GST_FLOW_ERROR);
  message = gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING);
  fail_unless (message != NULL);
  gst_message_parse_warning (message, &error, &debug);
  fail_unless (strstr (error->message, "labels") != NULL, "%s", error->message);
  gst_message_unref (message);
  g_clear_error (&error);
  g_clear_pointer (&debug, g_free);
  message = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (message != NULL);
  gst_message_parse_error (message, &error, &debug);
  fail_unless (strstr (error->message, GST_ELEMENT_NAME (element)) != NULL, "%s", error->message);
  fail_unless (strstr (error->message, "labels") != NULL, "%s", error->message);
  gst_message_unref (message);
  gst_element_set_bus (element, NULL);
  gst_harness_teardown (harness);
}
GST_END_TEST;

GST_START_TEST (test_labels_file)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *path = NULL;
  gint fd = g_file_open_tmp ("umgclipseg-labels-XXXXXX.txt", &path, &error);
  GstHarness *harness;
  GstBuffer *out;

  fail_unless (fd >= 0, "%s", error != NULL ? error->message : "");
  close (fd);
  fail_unless (g_file_set_contents (path, "road\n\n  person \ncar\n", -1, &error));
  harness = element_test_harness (make_seg ("labels-file", path, "threshold", 0.0, NULL),
                                  "video/x-raw,format=RGB,width=32,height=32,framerate=30/1");
  out = push_and_pull (harness, 0, 0);
  assert_labels (get_seg_meta (out), get_custom_structure (out), "road,person,car");
  assert_consistent (get_seg_meta (out), FALSE);
  gst_buffer_unref (out);
  gst_harness_teardown (harness);
  g_unlink (path);
}
GST_END_TEST;

GST_START_TEST (test_properties)
{
  GstElement *element = gst_element_factory_make ("umgclipseg", NULL);
  g_autofree gchar *stuff = NULL;
  gint mode = -1;
  guint min_area = 1, mask_size = 1;
  gdouble affinity = 0;

  g_object_get (element, "mode", &mode, "stuff-labels", &stuff, "min-area", &min_area, "mask-size",
                &mask_size, "thing-affinity", &affinity, NULL);
  fail_unless_equals_float (affinity, UMGCLIP_DEFAULT_THING_AFFINITY);
  g_object_set (element, "thing-affinity", -1.0, NULL);
  g_object_get (element, "thing-affinity", &affinity, NULL);
  fail_unless_equals_float (affinity, -1.0);
  fail_unless_equals_int (mode, 0);
  fail_unless (stuff == NULL);
  fail_unless_equals_int (min_area, 0);
  fail_unless_equals_int (mask_size, 0);

  gst_util_set_object_arg (G_OBJECT (element), "mode", "panoptic");
  g_object_set (element, "stuff-labels", "sky,road", "min-area", 100, "mask-size", 64, NULL);
  g_clear_pointer (&stuff, g_free);
  g_object_get (element, "mode", &mode, "stuff-labels", &stuff, "min-area", &min_area, "mask-size",
                &mask_size, NULL);
  fail_unless_equals_int (mode, 1);
  fail_unless_equals_string (stuff, "sky,road");
  fail_unless_equals_int (min_area, 100);
  fail_unless_equals_int (mask_size, 64);
  gst_object_unref (element);
}
GST_END_TEST;

static Suite *
umgclipseg_suite (void)
{
  Suite *suite = suite_create ("umgclipseg");
  TCase *tc = tcase_create ("general");
  tcase_set_timeout (tc, 240);
  suite_add_tcase (suite, tc);
  tcase_add_test (tc, test_properties);
  tcase_add_test (tc, test_every_format);
  tcase_add_test (tc, test_semantic_matches_runtime);
  tcase_add_test (tc, test_panoptic_matches_runtime);
  tcase_add_test (tc, test_labels_changed_in_playing);
  tcase_add_test (tc, test_inference_interval);
  tcase_add_test (tc, test_renegotiation);
  tcase_add_test (tc, test_mask_size_and_min_area);
  tcase_add_test (tc, test_meta_survives_convert_and_scale);
  tcase_add_test (tc, test_errors_name_the_problem);
  tcase_add_test (tc, test_labels_cleared_in_playing);
  tcase_add_test (tc, test_labels_file);
  return suite;
}

GST_CHECK_MAIN (umgclipseg);
