/* The umgclip metadata API: add/get, deep copies, scaling through a real videoscale, the
 * custom-meta twin of the segmentation meta, and the "umgclip" ROI param structure. */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include "umgclipmeta.h"

#define DIM 4

static const gfloat embedding_values[DIM] = { 0.5f, -0.5f, 0.5f, 0.5f };

static GstBuffer *
make_class_map (guint width, guint height)
{
  GstBuffer *map = gst_buffer_new_allocate (NULL, width * height, NULL);
  GstMapInfo info;
  gst_buffer_map (map, &info, GST_MAP_WRITE);
  for (guint i = 0; i < width * height; i++)
    info.data[i] = i % 3 == 0 ? GST_UMGCLIP_CLASS_NONE_8 : i % 2;
  gst_buffer_unmap (map, &info);
  return map;
}

static GstUmgClipSegmentationMeta *
add_test_segmentation (GstBuffer *buffer, guint frame_width, guint frame_height)
{
  const gchar *labels[] = { "cat", "grass", NULL };
  g_autoptr (GstBuffer) class_map = make_class_map (8, 6);
  g_autoptr (GstBuffer) instance_map = gst_buffer_new_allocate (NULL, 8 * 6 * 2, NULL);
  GstUmgClipSegment cat = { 1, 0, 0.75f, TRUE, 10, 20, 30, 16, 12 };
  GstUmgClipSegment grass = { 2, 1, 0.5f, FALSE, 0, 24, 64, 24, 20 };
  GstUmgClipSegmentationMeta *meta;

  gst_buffer_memset (instance_map, 0, 0, 8 * 6 * 2);
  meta = gst_buffer_add_umgclip_segmentation_meta (buffer, frame_width, frame_height, 8, 6, labels,
                                                   class_map, instance_map);
  gst_umgclip_segmentation_meta_add_segment (meta, &cat);
  gst_umgclip_segmentation_meta_add_segment (meta, &grass);
  return meta;
}

static void
assert_embedding_meta (GstBuffer *buffer, gboolean with_dense)
{
  GstUmgClipEmbeddingMeta *meta = gst_buffer_get_umgclip_embedding_meta (buffer);
  fail_unless (meta != NULL);
  fail_unless_equals_string (meta->model, "tiny");
  fail_unless_equals_int (meta->dim, DIM);
  for (guint i = 0; i < DIM; i++)
    fail_unless_equals_float (meta->embedding[i], embedding_values[i]);
  if (!with_dense)
    {
      fail_unless (meta->dense == NULL);
      return;
    }
  fail_unless (meta->dense != NULL);
  fail_unless_equals_string (meta->dense_mode, "clearclip");
  fail_unless_equals_int (meta->grid_width, 3);
  fail_unless_equals_int (meta->grid_height, 2);
  fail_unless_equals_int (meta->input_width, 48);
  fail_unless_equals_int (meta->input_height, 32);
  for (guint i = 0; i < 3 * 2 * DIM; i++)
    fail_unless_equals_float (meta->dense[i], (gfloat) i);
}

GST_START_TEST (test_embedding_add_get_copy)
{
  g_autoptr (GstBuffer) buffer = gst_buffer_new ();
  g_autoptr (GstBuffer) copy = NULL;
  gfloat dense[3 * 2 * DIM];
  GstUmgClipEmbeddingMeta *meta;

  fail_unless (gst_buffer_get_umgclip_embedding_meta (buffer) == NULL);
  meta = gst_buffer_add_umgclip_embedding_meta (buffer, "tiny", embedding_values, DIM);
  fail_unless (meta->embedding != embedding_values); /* copied, not borrowed */
  assert_embedding_meta (buffer, FALSE);

  for (guint i = 0; i < G_N_ELEMENTS (dense); i++)
    dense[i] = i;
  gst_umgclip_embedding_meta_set_dense (meta, "clearclip", 48, 32, 3, 2, dense);
  dense[0] = -1; /* the meta must hold its own copy */
  assert_embedding_meta (buffer, TRUE);

  copy = gst_buffer_copy (buffer);
  assert_embedding_meta (copy, TRUE);
  fail_unless (gst_buffer_get_umgclip_embedding_meta (copy)->embedding != meta->embedding);
}
GST_END_TEST;

GST_START_TEST (test_segmentation_add_get_copy)
{
  g_autoptr (GstBuffer) buffer = gst_buffer_new ();
  g_autoptr (GstBuffer) copy = NULL;
  GstUmgClipSegmentationMeta *meta = add_test_segmentation (buffer, 64, 48), *copied;
  GstUmgClipSegment *segment;

  fail_unless (gst_buffer_get_umgclip_segmentation_meta (buffer) == meta);
  fail_unless_equals_int (meta->format, GST_VIDEO_FORMAT_GRAY8);
  fail_unless_equals_int (g_strv_length (meta->labels), 2);

  copy = gst_buffer_copy (buffer);
  copied = gst_buffer_get_umgclip_segmentation_meta (copy);
  fail_unless (copied != NULL && copied != meta);
  fail_unless_equals_int (copied->frame_width, 64);
  fail_unless_equals_int (copied->frame_height, 48);
  fail_unless_equals_int (copied->mask_width, 8);
  fail_unless_equals_int (copied->mask_height, 6);
  fail_unless_equals_string (copied->labels[1], "grass");
  fail_unless (copied->labels != meta->labels);
  /* Deep copy: a different map buffer with the same bytes. */
  fail_unless (copied->class_map != meta->class_map);
  fail_unless (gst_buffer_memcmp (copied->class_map, 0, (guint8[]){ 255, 1, 0, 255 }, 4) == 0);
  fail_unless (copied->instance_map != NULL && copied->instance_map != meta->instance_map);
  fail_unless_equals_int (copied->segments->len, 2);
  segment = &g_array_index (copied->segments, GstUmgClipSegment, 0);
  fail_unless_equals_int (segment->id, 1);
  fail_unless_equals_int (segment->label_id, 0);
  fail_unless_equals_float (segment->score, 0.75f);
  fail_unless (segment->is_thing);
  fail_unless_equals_int (segment->x, 10);
  fail_unless_equals_int (segment->w, 30);
  fail_unless_equals_int (segment->area, 12);
}
GST_END_TEST;

GST_START_TEST (test_segmentation_many_labels_use_gray16)
{
  g_autoptr (GstBuffer) buffer = gst_buffer_new ();
  g_autoptr (GPtrArray) labels = g_ptr_array_new_with_free_func (g_free);
  GstUmgClipSegmentationMeta *meta;
  for (guint i = 0; i < 256; i++)
    g_ptr_array_add (labels, g_strdup_printf ("label%u", i));
  g_ptr_array_add (labels, NULL);
  meta = gst_buffer_add_umgclip_segmentation_meta (
      buffer, 16, 16, 4, 4, (const gchar *const *) labels->pdata, NULL, NULL);
  fail_unless_equals_int (meta->format, GST_VIDEO_FORMAT_GRAY16_LE);
  fail_unless_equals_int (g_strv_length (meta->labels), 256);
}
GST_END_TEST;

static void
assert_custom_segmentation (GstBuffer *buffer, gint frame_width, gint frame_height, gint x,
                            gint width)
{
  GstCustomMeta *custom = gst_buffer_get_custom_meta (buffer, "UmgClipSegmentation");
  const GstStructure *structure;
  const GValue *labels, *segments;
  const GstStructure *cat;
  gint value = 0;
  gdouble score = 0;
  gboolean is_thing = FALSE;

  fail_unless (custom != NULL);
  structure = gst_custom_meta_get_structure (custom);
  fail_unless (gst_structure_get_int (structure, "width", &value) && value == 8);
  fail_unless (gst_structure_get_int (structure, "height", &value) && value == 6);
  fail_unless (gst_structure_get_int (structure, "frame-width", &value));
  fail_unless_equals_int (value, frame_width);
  fail_unless (gst_structure_get_int (structure, "frame-height", &value));
  fail_unless_equals_int (value, frame_height);
  labels = gst_structure_get_value (structure, "labels");
  fail_unless (GST_VALUE_HOLDS_ARRAY (labels));
  fail_unless_equals_int (gst_value_array_get_size (labels), 2);
  fail_unless_equals_string (g_value_get_string (gst_value_array_get_value (labels, 0)), "cat");
  segments = gst_structure_get_value (structure, "segments");
  fail_unless_equals_int (gst_value_array_get_size (segments), 2);
  cat = gst_value_get_structure (gst_value_array_get_value (segments, 0));
  fail_unless_equals_string (gst_structure_get_string (cat, "label"), "cat");
  fail_unless (gst_structure_get_int (cat, "x", &value));
  fail_unless_equals_int (value, x);
  fail_unless (gst_structure_get_int (cat, "width", &value));
  fail_unless_equals_int (value, width);
  fail_unless (gst_structure_get_double (cat, "score", &score));
  fail_unless_equals_float (score, 0.75);
  fail_unless (gst_structure_get_boolean (cat, "is-thing", &is_thing) && is_thing);
  fail_unless (GST_VALUE_HOLDS_BUFFER (gst_structure_get_value (structure, "class-map")));
  fail_unless (
      gst_buffer_memcmp (gst_value_get_buffer (gst_structure_get_value (structure, "class-map")), 0,
                         (guint8[]){ 255, 1, 0, 255 }, 4)
      == 0);
  fail_unless (GST_VALUE_HOLDS_BUFFER (gst_structure_get_value (structure, "instance-map")));
}

GST_START_TEST (test_segmentation_custom_meta)
{
  g_autoptr (GstBuffer) buffer = gst_buffer_new ();
  g_autoptr (GstBuffer) copy = NULL;
  GstUmgClipSegmentationMeta *meta = add_test_segmentation (buffer, 64, 48);

  fail_unless (gst_buffer_add_umgclip_segmentation_custom_meta (buffer, meta) != NULL);
  assert_custom_segmentation (buffer, 64, 48, 10, 30);
  copy = gst_buffer_copy (buffer);
  assert_custom_segmentation (copy, 64, 48, 10, 30);
}
GST_END_TEST;

/* A real videoscale halving the frame: the embedding is unchanged, the segmentation meta (and
 * its custom twin) now describe a 32x24 frame with boxes at half size and the same maps. */
GST_START_TEST (test_metas_through_videoscale)
{
  GstHarness *harness = gst_harness_new ("videoscale");
  GstBuffer *in, *out;
  GstUmgClipSegmentationMeta *meta, *scaled;
  GstUmgClipSegment *cat;

  gst_harness_set_caps_str (harness, "video/x-raw,format=RGB,width=64,height=48,framerate=30/1",
                            "video/x-raw,format=RGB,width=32,height=24,framerate=30/1");
  in = gst_harness_create_buffer (harness, 64 * 48 * 3);
  gst_buffer_add_umgclip_embedding_meta (in, "tiny", embedding_values, DIM);
  meta = add_test_segmentation (in, 64, 48);
  gst_buffer_add_umgclip_segmentation_custom_meta (in, meta);
  fail_unless_equals_int (gst_harness_push (harness, in), GST_FLOW_OK);
  out = gst_harness_pull (harness);

  assert_embedding_meta (out, FALSE);
  scaled = gst_buffer_get_umgclip_segmentation_meta (out);
  fail_unless (scaled != NULL);
  fail_unless_equals_int (scaled->frame_width, 32);
  fail_unless_equals_int (scaled->frame_height, 24);
  fail_unless_equals_int (scaled->mask_width, 8);
  fail_unless_equals_int (scaled->mask_height, 6);
  fail_unless (gst_buffer_memcmp (scaled->class_map, 0, (guint8[]){ 255, 1, 0, 255 }, 4) == 0);
  cat = &g_array_index (scaled->segments, GstUmgClipSegment, 0);
  fail_unless_equals_int (cat->x, 5);
  fail_unless_equals_int (cat->y, 10);
  fail_unless_equals_int (cat->w, 15);
  fail_unless_equals_int (cat->h, 8);
  fail_unless_equals_int (cat->area, 12); /* mask pixels: unchanged */
  assert_custom_segmentation (out, 32, 24, 5, 15);

  gst_buffer_unref (out);
  gst_harness_teardown (harness);
}
GST_END_TEST;

GST_START_TEST (test_roi_tags_best_first)
{
  g_autoptr (GstBuffer) buffer = gst_buffer_new ();
  GstVideoRegionOfInterestMeta *roi
      = gst_buffer_add_video_region_of_interest_meta (buffer, "person", 1, 2, 30, 40);
  const gchar *labels[] = { "dog", "cat", "car" };
  const guint label_ids[] = { 0, 1, 2 };
  const gdouble scores[] = { 0.2, 0.7, 0.1 };
  GstStructure *params;
  const GValue *tags, *tag_scores;
  gint label_id = 99;
  guint n_umgclip = 0;
  gdouble confidence = 0;

  gst_umgclip_roi_set_tags (roi, "old", labels, label_ids, scores, 1, GST_CLOCK_TIME_NONE);
  gst_umgclip_roi_set_tags (roi, "tiny", labels, label_ids, scores, 3, 42 * GST_SECOND);
  for (GList *link = roi->params; link != NULL; link = link->next)
    n_umgclip += gst_structure_has_name (link->data, "umgclip");
  fail_unless_equals_int (n_umgclip, 1); /* replaced, not appended */

  params = gst_video_region_of_interest_meta_get_param (roi, "umgclip");
  fail_unless (params != NULL);
  fail_unless_equals_string (gst_structure_get_string (params, "model"), "tiny");
  fail_unless_equals_string (gst_structure_get_string (params, "label"), "cat");
  fail_unless (gst_structure_get_int (params, "label_id", &label_id));
  fail_unless_equals_int (label_id, 1);
  fail_unless (gst_structure_get_double (params, "confidence", &confidence));
  fail_unless_equals_float (confidence, 0.7);
  tags = gst_structure_get_value (params, "tags");
  tag_scores = gst_structure_get_value (params, "scores");
  fail_unless_equals_int (gst_value_array_get_size (tags), 3);
  fail_unless_equals_string (g_value_get_string (gst_value_array_get_value (tags, 0)), "cat");
  fail_unless_equals_string (g_value_get_string (gst_value_array_get_value (tags, 1)), "dog");
  fail_unless_equals_string (g_value_get_string (gst_value_array_get_value (tags, 2)), "car");
  fail_unless_equals_float (g_value_get_double (gst_value_array_get_value (tag_scores, 0)), 0.7);
  fail_unless_equals_float (g_value_get_double (gst_value_array_get_value (tag_scores, 2)), 0.1);
}
GST_END_TEST;

/* Numeric params are read whatever their type: DL Streamer's int label_id, uint, float. */
GST_START_TEST (test_structure_get_number)
{
  GstStructure *s
      = gst_structure_new ("detection", "label_id", G_TYPE_INT, -3, "count", G_TYPE_UINT, 7u,
                           "confidence", G_TYPE_FLOAT, 0.25f, "label", G_TYPE_STRING, "cat", NULL);
  gdouble value = 0.0;

  fail_unless (gst_umgclip_structure_get_number (s, "label_id", &value));
  fail_unless (value == -3.0);
  fail_unless (gst_umgclip_structure_get_number (s, "count", &value));
  fail_unless (value == 7.0);
  fail_unless (gst_umgclip_structure_get_number (s, "confidence", &value));
  fail_unless (value == 0.25);
  value = 42.0;
  fail_if (gst_umgclip_structure_get_number (s, "label", &value));
  fail_if (gst_umgclip_structure_get_number (s, "missing", &value));
  fail_if (gst_umgclip_structure_get_number (NULL, "label_id", &value));
  fail_unless (value == 42.0);
  gst_structure_free (s);
}
GST_END_TEST;

static Suite *
umgclip_meta_suite (void)
{
  Suite *suite = suite_create ("umgclipmeta");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (suite, tc);
  tcase_add_test (tc, test_embedding_add_get_copy);
  tcase_add_test (tc, test_segmentation_add_get_copy);
  tcase_add_test (tc, test_segmentation_many_labels_use_gray16);
  tcase_add_test (tc, test_segmentation_custom_meta);
  tcase_add_test (tc, test_metas_through_videoscale);
  tcase_add_test (tc, test_roi_tags_best_first);
  tcase_add_test (tc, test_structure_get_number);
  return suite;
}

GST_CHECK_MAIN (umgclip_meta);
