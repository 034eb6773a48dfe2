/* umgcliptag through GstHarness: tags on the whole frame, on ROIs added by the test and on
 * segments, checked against the runtime called directly on the same input or on a dense map the
 * test builds itself. Environment: UMGCLIP_TEST_MODEL (model directory), UMGCLIP_TEST_DEVICE. */
#include "element_test_util.h"

#include <gst/check/gstcheck.h>
#include <glib/gstdio.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <math.h>
#include <string.h>

#include "umgclip.h"
#include "umgclipmeta.h"

#define LABELS "cat,dog,car,tree"
#define N_LABELS 4

static const gchar *const label_list[N_LABELS] = { "cat", "dog", "car", "tree" };

/* The runtime on the device the element uses, so label embeddings agree bit for bit. */
static UmgClipContext *
test_context (void)
{
  g_autoptr (GError) error = NULL;
  UmgClipDeviceKind kind;
  gint index;
  UmgClipContext *context;
  fail_unless (umgclip_parse_device (element_test_device (), &kind, &index, &error));
  context = umgclip_context_new (element_test_model (), kind, index, &error);
  fail_unless (context != NULL, "%s", error != NULL ? error->message : "");
  return context;
}

/* Label embeddings as the element makes them with its default prompt template. */
static gfloat *
label_embeddings (UmgClipContext *context)
{
  g_autoptr (GError) error = NULL;
  const gchar *templates[] = { "a photo of a {}." };
  gint dim = umgclip_context_get_info (context)->embed_dim;
  gfloat *out = g_new (gfloat, N_LABELS * dim);
  fail_unless (umgclip_encode_labels (context, label_list, N_LABELS, templates, 1, out, &error),
               "%s", error != NULL ? error->message : "");
  return out;
}

static GstElement *
make_tagger (const gchar *first_property, ...)
{
  GstElement *element = element_test_make ("umgcliptag");
  va_list args;
  /* random test models score low: keep every tag unless the caller says otherwise */
  g_object_set (element, "labels", LABELS, "threshold", 0.0, NULL);
  va_start (args, first_property);
  if (first_property != NULL)
    g_object_set_valist (G_OBJECT (element), first_property, args);
  va_end (args);
  return element;
}

/* ---- reading tags back ---- */

typedef struct
{
  guint n;
  const gchar *labels[16];
  gdouble scores[16];
} Tags;

/* The "umgclip" structure of roi, checked for consistency: best tag first and in label /
 * label_id / confidence, scores falling, label ids pointing at the labels. */
static Tags
read_tags (GstVideoRegionOfInterestMeta *roi, const gchar *const *labels, guint n_labels)
{
  GstStructure *params = gst_video_region_of_interest_meta_get_param (roi, "umgclip");
  const GValue *tags, *scores;
  Tags out = { 0 };

  fail_unless (params != NULL, "ROI %s has no umgclip params", g_quark_to_string (roi->roi_type));
  fail_unless_equals_string (gst_structure_get_string (params, "model"), "tiny-hf-f16");
  tags = gst_structure_get_value (params, "tags");
  scores = gst_structure_get_value (params, "scores");
  fail_unless (tags != NULL && scores != NULL);
  out.n = gst_value_array_get_size (tags);
  fail_unless_equals_int (gst_value_array_get_size (scores), out.n);
  fail_unless (out.n <= 16);
  for (guint i = 0; i < out.n; i++)
    {
      out.labels[i] = g_value_get_string (gst_value_array_get_value (tags, i));
      out.scores[i] = g_value_get_double (gst_value_array_get_value (scores, i));
      fail_unless (out.scores[i] >= 0 && out.scores[i] <= 1);
      if (i > 0)
        fail_unless (out.scores[i] <= out.scores[i - 1]);
      fail_unless (g_strv_contains (labels, out.labels[i]), "tag %s is not a label", out.labels[i]);
    }
  if (out.n > 0)
    {
      gint label_id = -1;
      gdouble confidence = -1;
      fail_unless_equals_string (gst_structure_get_string (params, "label"), out.labels[0]);
      fail_unless (gst_structure_get_int (params, "label_id", &label_id));
      fail_unless (label_id >= 0 && (guint) label_id < n_labels);
      fail_unless_equals_string (labels[label_id], out.labels[0]);
      fail_unless (gst_structure_get_double (params, "confidence", &confidence));
      fail_unless_equals_float (confidence, out.scores[0]);
    }
  return out;
}

static guint
count_rois (GstBuffer *buffer)
{
  guint n = 0;
  gpointer state = NULL;
  while (
      gst_buffer_iterate_meta_filtered (buffer, &state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))
    n++;
  return n;
}

/* Every ROI meta is found by its id, and the ids are 0..n-1. */
static void
assert_ids_numbered (GstBuffer *buffer)
{
  guint n = count_rois (buffer);
  for (guint id = 0; id < n; id++)
    fail_unless (gst_buffer_get_video_region_of_interest_meta_id (buffer, id) != NULL,
                 "no ROI with id %u of %u", id, n);
}

static GstVideoRegionOfInterestMeta *
find_roi (GstBuffer *buffer, const gchar *roi_type)
{
  gpointer state = NULL;
  GstMeta *meta;
  while ((meta = gst_buffer_iterate_meta_filtered (buffer, &state,
                                                   GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)))
    if (((GstVideoRegionOfInterestMeta *) meta)->roi_type == g_quark_from_string (roi_type))
      return (GstVideoRegionOfInterestMeta *) meta;
  return NULL;
}

/* Tags must be the runtime's ranking of embedding, score for score. */
static void
assert_tags_rank (const Tags *tags, UmgClipContext *context, const gfloat *embedding,
                  const gfloat *labels, gdouble tolerance)
{
  g_autoptr (GError) error = NULL;
  const UmgClipInfo *info = umgclip_context_get_info (context);
  guint ids[N_LABELS];
  gfloat scores[N_LABELS];
  fail_unless (tags->n >= 1 && tags->n <= N_LABELS);
  fail_unless (umgclip_rank_labels (embedding, 1, info->embed_dim, labels, N_LABELS,
                                    info->logit_scale, tags->n, ids, scores, &error));
  for (guint k = 0; k < tags->n; k++)
    {
      fail_unless_equals_string (tags->labels[k], label_list[ids[k]]);
      fail_unless (fabs (tags->scores[k] - scores[k]) < tolerance, "tag %u: %f, runtime %f", k,
                   tags->scores[k], scores[k]);
    }
}

/* ---- controlled features: an upstream embedding meta the element reuses ---- */

/* ---- tests ---- */

GST_START_TEST (test_properties)
{
  GstElement *element = gst_element_factory_make ("umgcliptag", NULL);
  g_autofree gchar *object_class = NULL;
  gint region = -1, mode = -1;
  guint top_k = 0;
  gdouble threshold = 0;

  fail_unless (element != NULL);
  g_object_get (element, "inference-region", &region, "object-class", &object_class, "top-k",
                &top_k, "region-mode", &mode, "threshold", &threshold, NULL);
  fail_unless_equals_int (region, 0);
  fail_unless (object_class == NULL);
  fail_unless_equals_int (top_k, 5);
  fail_unless_equals_int (mode, 0);
  fail_unless_equals_float (threshold, 0.5);

  gst_util_set_object_arg (G_OBJECT (element), "inference-region", "segments");
  gst_util_set_object_arg (G_OBJECT (element), "region-mode", "crop");
  g_object_set (element, "object-class", "person,car", "top-k", 2, NULL);
  g_clear_pointer (&object_class, g_free);
  g_object_get (element, "inference-region", &region, "object-class", &object_class, "top-k",
                &top_k, "region-mode", &mode, NULL);
  fail_unless_equals_int (region, 2);
  fail_unless_equals_int (mode, 1);
  fail_unless_equals_string (object_class, "person,car");
  fail_unless_equals_int (top_k, 2);
  gst_util_set_object_arg (G_OBJECT (element), "inference-region", "roi-list");
  g_object_get (element, "inference-region", &region, NULL);
  fail_unless_equals_int (region, 1);
  gst_object_unref (element);
}
GST_END_TEST;

GST_START_TEST (test_every_format_full_frame)
{
  const gchar *formats[] = { "RGB", "RGBA", "RGBx", "BGRx", "BGRA", "NV12", "I420" };

  for (guint f = 0; f < G_N_ELEMENTS (formats); f++)
    {
      g_autofree gchar *caps
          = g_strdup_printf ("video/x-raw,format=%s,width=50,height=38,framerate=30/1", formats[f]);
      GstHarness *harness = element_test_harness (make_tagger ("top-k", 3, NULL), caps);
      GstBuffer *out = element_test_push_pull (harness, element_test_frame (harness, f, 0));
      GstVideoRegionOfInterestMeta *roi;
      Tags tags;
      gdouble sum = 0;

      GST_INFO ("format %s", formats[f]);
      fail_unless_equals_int (count_rois (out), 1);
      roi = gst_buffer_get_video_region_of_interest_meta_id (out, 0);
      fail_unless (roi != NULL);
      fail_unless_equals_string (g_quark_to_string (roi->roi_type), "frame");
      fail_unless (roi->x == 0 && roi->y == 0 && roi->w == 50 && roi->h == 38);
      tags = read_tags (roi, label_list, N_LABELS);
      fail_unless_equals_int (tags.n, 3);
      for (guint k = 0; k < tags.n; k++)
        {
          sum += tags.scores[k];
          for (guint j = 0; j < k; j++)
            fail_if (g_str_equal (tags.labels[j], tags.labels[k]));
        }
      /* A softmax over 4 labels: the best 3 take less than all of it, more than 3/4 of it. */
      fail_unless (sum < 1.0 + 1e-6 && sum > 0.75, "sum %f", sum);
      gst_buffer_unref (out);
      gst_harness_teardown (harness);
    }
}
GST_END_TEST;

/* A 64x64 RGB frame resized to the 32 px input is the mean of each 2x2 block: the runtime
 * given that tensor must rank the labels with the same scores. */
static void
block_mean_tensor (const guint8 *rgb, gint stride, gint x0, gint y0, UmgClipContext *context,
                   gfloat *pixels)
{
  gfloat mean[3], std[3];
  umgclip_get_pixel_stats (context, mean, std);
  for (gint c = 0; c < 3; c++)
    for (gint y = 0; y < 32; y++)
      for (gint x = 0; x < 32; x++)
        {
          const guint8 *p = rgb + (y0 + 2 * y) * stride + (x0 + 2 * x) * 3 + c;
          gfloat value = (p[0] + p[3] + p[stride] + p[stride + 3]) / (4 * 255.0f);
          pixels[c * 32 * 32 + y * 32 + x] = (value - mean[c]) / std[c];
        }
}

static void
encode_tensor (UmgClipContext *context, const gfloat *pixels, gfloat *embedding)
{
  g_autoptr (GError) error = NULL;
  UmgClipImageRequest request = { .embedding = embedding };
  fail_unless (umgclip_encode_image (context, pixels, 32, 32, &request, &error), "%s",
               error != NULL ? error->message : "");
}

GST_START_TEST (test_full_frame_matches_runtime)
{
  g_autoptr (UmgClipContext) context = test_context ();
  g_autofree gfloat *labels = label_embeddings (context);
  const gint dim = umgclip_context_get_info (context)->embed_dim;
  g_autofree gfloat *embedding = g_new (gfloat, dim);
  GstHarness *harness = element_test_harness (
      make_tagger ("top-k", 4, NULL), "video/x-raw,format=RGB,width=64,height=64,framerate=30/1");
  GstBuffer *in = element_test_frame (harness, 3, 0), *out;
  gfloat pixels[3 * 32 * 32];
  GstMapInfo map;
  Tags tags;

  fail_unless (gst_buffer_map (in, &map, GST_MAP_READ));
  block_mean_tensor (map.data, 64 * 3, 0, 0, context, pixels);
  gst_buffer_unmap (in, &map);
  encode_tensor (context, pixels, embedding);

  out = element_test_push_pull (harness, in);
  tags = read_tags (gst_buffer_get_video_region_of_interest_meta_id (out, 0), label_list, N_LABELS);
  fail_unless_equals_int (tags.n, 4);
  assert_tags_rank (&tags, context, embedding, labels, 1e-4);
  gst_buffer_unref (out);
  gst_harness_teardown (harness);
}
GST_END_TEST;

/* ROIs added by the test on a dense map whose left five columns are "cat" and the rest "dog":
 * boxes inside one side get exactly that label's ranking, a box centred on the border the
 * ranking of their mean, and the ROIs are tagged in place. */
GST_START_TEST (test_roi_list_roi_align)
{
  g_autoptr (UmgClipContext) context = test_context ();
  g_autofree gfloat *labels = label_embeddings (context);
  const gint dim = umgclip_context_get_info (context)->embed_dim;
  g_autofree gfloat *middle = g_new (gfloat, dim);
  GstHarness *harness = element_test_harness (
      make_tagger ("inference-region", 1, "input-size", 64, "top-k", 4, NULL),
      "video/x-raw,format=RGBx,width=64,height=64,framerate=30/1");
  GstBuffer *in = element_test_frame (harness, 1, 0), *out;
  Tags left, right, centre;

  element_test_add_dense_meta (in, labels, dim, 64, 0, 1, 4);
  /* 8 px per cell: x 0..16 samples cells -0.5..1.5, x 48..64 cells 5.5..7.5 (clamped). */
  gst_buffer_add_video_region_of_interest_meta (in, "left", 0, 8, 16, 40);
  gst_buffer_add_video_region_of_interest_meta (in, "right", 48, 0, 16, 64);
  gst_buffer_add_video_region_of_interest_meta (in, "centre", 16, 0, 32, 64);
  out = element_test_push_pull (harness, in);

  fail_unless_equals_int (count_rois (out), 3);
  assert_ids_numbered (out);
  left = read_tags (find_roi (out, "left"), label_list, N_LABELS);
  right = read_tags (find_roi (out, "right"), label_list, N_LABELS);
  centre = read_tags (find_roi (out, "centre"), label_list, N_LABELS);
  fail_unless_equals_string (left.labels[0], "cat");
  fail_unless_equals_string (right.labels[0], "dog");
  assert_tags_rank (&left, context, labels, labels, 1e-5);
  assert_tags_rank (&right, context, labels + dim, labels, 1e-5);
  /* The centre box samples cells 1.5..5.5: as much of cell 3 (cat) as of cell 4 (dog). */
  for (gint c = 0; c < dim; c++)
    middle[c] = labels[c] + labels[dim + c];
  assert_tags_rank (&centre, context, middle, labels, 1e-4);
  gst_buffer_unref (out);
  gst_harness_teardown (harness);
}
GST_END_TEST;

GST_START_TEST (test_object_class_filter)
{
  GstHarness *harness = element_test_harness (
      make_tagger ("inference-region", 1, "object-class", "person, dog", NULL),
      "video/x-raw,format=BGRx,width=64,height=48,framerate=30/1");
  GstBuffer *in = element_test_frame (harness, 2, 0), *out;
  GstVideoRegionOfInterestMeta *unnamed;

  gst_buffer_add_video_region_of_interest_meta (in, "person", 0, 0, 20, 40);
  gst_buffer_add_video_region_of_interest_meta (in, "car", 20, 10, 30, 20);
  gst_buffer_add_video_region_of_interest_meta (in, "dog", 30, 20, 34, 28);
  /* a detector's ROI whose class is only in its DL Streamer detection structure */
  unnamed = gst_buffer_add_video_region_of_interest_meta (in, "object", 4, 4, 16, 16);
  gst_video_region_of_interest_meta_add_param (
      unnamed, gst_structure_new ("detection", "label", G_TYPE_STRING, "person", NULL));
  gst_buffer_add_video_region_of_interest_meta (in, "tree", 0, 30, 10, 10);
  out = element_test_push_pull (harness, in);

  fail_unless_equals_int (count_rois (out), 5);
  assert_ids_numbered (out);
  fail_unless_equals_int (read_tags (find_roi (out, "person"), label_list, N_LABELS).n, 4);
  fail_unless_equals_int (read_tags (find_roi (out, "dog"), label_list, N_LABELS).n, 4);
  fail_unless_equals_int (read_tags (find_roi (out, "object"), label_list, N_LABELS).n, 4);
  fail_unless (gst_video_region_of_interest_meta_get_param (find_roi (out, "car"), "umgclip")
               == NULL);
  fail_unless (gst_video_region_of_interest_meta_get_param (find_roi (out, "tree"), "umgclip")
               == NULL);
  gst_buffer_unref (out);
  gst_harness_teardown (harness);
}
GST_END_TEST;

typedef struct
{
  guint top_k;
  gdouble threshold;
  guint expected;
} TopKCase;

/* With the global embedding set to "car"'s, the scores are known; top-k and threshold cut the
 * list where they should. */
GST_START_TEST (test_top_k_and_threshold)
{
  g_autoptr (UmgClipContext) context = test_context ();
  g_autofree gfloat *labels = label_embeddings (context);
  const UmgClipInfo *info = umgclip_context_get_info (context);
  const gint dim = info->embed_dim;
  g_autoptr (GError) error = NULL;
  guint ids[N_LABELS];
  gfloat scores[N_LABELS];
  TopKCase cases[4];

  fail_unless (umgclip_rank_labels (labels + 2 * dim, 1, dim, labels, N_LABELS, info->logit_scale,
                                    N_LABELS, ids, scores, &error));
  fail_unless_equals_int (ids[0], 2);
  fail_unless (scores[0] > scores[1] && scores[1] > scores[2]);
  cases[0] = (TopKCase){ 2, 0.0, 2 };
  cases[1] = (TopKCase){ 10, 0.0, N_LABELS };
  cases[2] = (TopKCase){ 4, (scores[0] + scores[1]) / 2, 1 };
  cases[3] = (TopKCase){ 4, (scores[1] + scores[2]) / 2, 2 };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      GstHarness *harness = element_test_harness (
          make_tagger ("top-k", cases[i].top_k, "threshold", cases[i].threshold, NULL),
          "video/x-raw,format=RGB,width=40,height=30,framerate=30/1");
      GstBuffer *in = element_test_frame (harness, 0, 0), *out;
      Tags tags;
      element_test_add_dense_meta (in, labels, dim, 32, 2, 2, 0);
      out = element_test_push_pull (harness, in);
      tags = read_tags (gst_buffer_get_video_region_of_interest_meta_id (out, 0), label_list,
                        N_LABELS);
      fail_unless_equals_int (tags.n, cases[i].expected);
      assert_tags_rank (&tags, context, labels + 2 * dim, labels, 1e-5);
      gst_buffer_unref (out);
      gst_harness_teardown (harness);
    }
}
GST_END_TEST;

GST_START_TEST (test_labels_changed_in_playing)
{
  const gchar *const new_labels[] = { "red car", "green tree", "blue sky", NULL };
  GstElement *element = make_tagger (NULL);
  GstHarness *harness
      = element_test_harness (element, "video/x-raw,format=NV12,width=48,height=32,framerate=30/1");
  GstBuffer *before = element_test_push_pull (harness, element_test_frame (harness, 1, 0)), *after;
  Tags tags;

  tags = read_tags (gst_buffer_get_video_region_of_interest_meta_id (before, 0), label_list,
                    N_LABELS);
  fail_unless_equals_int (tags.n, N_LABELS);
  g_object_set (element, "labels", "red car, green tree, blue sky", NULL);
  after = element_test_push_pull (harness, element_test_frame (harness, 1, GST_SECOND / 30));
  tags = read_tags (gst_buffer_get_video_region_of_interest_meta_id (after, 0), new_labels, 3);
  fail_unless_equals_int (tags.n, 3);
  gst_buffer_unref (before);
  gst_buffer_unref (after);
  gst_harness_teardown (harness);
}
GST_END_TEST;

/* Crop mode re-encodes the box: a 64x64 box of a 128x128 frame at even offsets, resized to the
 * 32 px input, is again the mean of 2x2 blocks. */
GST_START_TEST (test_crop_matches_runtime)
{
  g_autoptr (UmgClipContext) context = test_context ();
  g_autofree gfloat *labels = label_embeddings (context);
  const gint dim = umgclip_context_get_info (context)->embed_dim;
  g_autofree gfloat *embedding = g_new (gfloat, dim);
  GstHarness *harness = element_test_harness (
      make_tagger ("inference-region", 1, "region-mode", 1, "top-k", 4, NULL),
      "video/x-raw,format=RGB,width=128,height=128,framerate=30/1");
  GstBuffer *in = element_test_frame (harness, 5, 0), *out;
  gfloat pixels[3 * 32 * 32];
  GstMapInfo map;
  Tags crop, whole;

  fail_unless (gst_buffer_map (in, &map, GST_MAP_READ));
  block_mean_tensor (map.data, 128 * 3, 32, 16, context, pixels);
  gst_buffer_unmap (in, &map);
  encode_tensor (context, pixels, embedding);

  gst_buffer_add_video_region_of_interest_meta (in, "box", 32, 16, 64, 64);
  gst_buffer_add_video_region_of_interest_meta (in, "whole", 0, 0, 128, 128);
  out = element_test_push_pull (harness, in);
  crop = read_tags (find_roi (out, "box"), label_list, N_LABELS);
  assert_tags_rank (&crop, context, embedding, labels, 1e-4);
  /* another box, another crop */
  whole = read_tags (find_roi (out, "whole"), label_list, N_LABELS);
  fail_unless (fabs (whole.scores[0] - crop.scores[0]) > 1e-6);
  gst_buffer_unref (out);
  gst_harness_teardown (harness);
}
GST_END_TEST;

GST_START_TEST (test_crop_every_format)
{
  const gchar *formats[] = { "RGB", "RGBA", "RGBx", "BGRx", "BGRA", "NV12", "I420" };
  for (guint f = 0; f < G_N_ELEMENTS (formats); f++)
    {
      g_autofree gchar *caps
          = g_strdup_printf ("video/x-raw,format=%s,width=50,height=38,framerate=30/1", formats[f]);
      GstHarness *harness = element_test_harness (
          make_tagger ("inference-region", 1, "region-mode", 1, NULL), caps);
      GstBuffer *in = element_test_frame (harness, f, 0), *out;
      /* odd corners and a box reaching past the frame */
      gst_buffer_add_video_region_of_interest_meta (in, "a", 3, 5, 21, 17);
      gst_buffer_add_video_region_of_interest_meta (in, "b", 31, 21, 40, 40);
      out = element_test_push_pull (harness, in);
      fail_unless_equals_int (read_tags (find_roi (out, "a"), label_list, N_LABELS).n, 4);
      fail_unless_equals_int (read_tags (find_roi (out, "b"), label_list, N_LABELS).n, 4);
      gst_buffer_unref (out);
      gst_harness_teardown (harness);
    }
}
GST_END_TEST;

/* A panoptic segmentation meta made by the test over the cat | dog dense map: two "blob"
 * instances, the first already an ROI (as umgclipseg makes them). Each is mask-averaged: the
 * left one covers only cat cells, the right one only dog cells. */
GST_START_TEST (test_segments_from_meta)
{
  g_autoptr (UmgClipContext) context = test_context ();
  g_autofree gfloat *labels = label_embeddings (context);
  const gint dim = umgclip_context_get_info (context)->embed_dim;
  const gchar *seg_labels[] = { "blob", NULL };
  GstHarness *harness = element_test_harness (
      make_tagger ("inference-region", 2, "input-size", 64, "top-k", 4, NULL),
      "video/x-raw,format=I420,width=64,height=64,framerate=30/1");
  GstBuffer *in = element_test_frame (harness, 1, 0), *out;
  GstBuffer *class_map = gst_buffer_new_allocate (NULL, 16 * 16, NULL);
  GstBuffer *instance_map = gst_buffer_new_allocate (NULL, 16 * 16 * 2, NULL);
  GstUmgClipSegmentationMeta *seg;
  GstUmgClipSegment first = { 1, 0, 0.75f, TRUE, 0, 0, 32, 64, 128 };
  GstUmgClipSegment second = { 2, 0, 0.5f, TRUE, 48, 0, 16, 64, 64 };
  GstVideoRegionOfInterestMeta *existing, *added;
  GstStructure *detection;
  GstMapInfo classes, instances;
  gdouble x_min = -1, x_max = -1, confidence = -1;
  Tags tags;

  /* mask columns 0..7: instance 1, 12..15: instance 2 (cells 5.75..7.25: dog only) */
  fail_unless (gst_buffer_map (class_map, &classes, GST_MAP_WRITE));
  fail_unless (gst_buffer_map (instance_map, &instances, GST_MAP_WRITE));
  for (guint y = 0; y < 16; y++)
    for (guint x = 0; x < 16; x++)
      {
        guint id = x < 8 ? 1 : x >= 12 ? 2 : 0;
        classes.data[y * 16 + x] = id != 0 ? 0 : GST_UMGCLIP_CLASS_NONE_8;
        GST_WRITE_UINT16_LE (instances.data + 2 * (y * 16 + x), id);
      }
  gst_buffer_unmap (class_map, &classes);
  gst_buffer_unmap (instance_map, &instances);
  element_test_add_dense_meta (in, labels, dim, 64, 0, 1, 5);
  seg = gst_buffer_add_umgclip_segmentation_meta (in, 64, 64, 16, 16, seg_labels, class_map,
                                                  instance_map);
  gst_umgclip_segmentation_meta_add_segment (seg, &first);
  gst_umgclip_segmentation_meta_add_segment (seg, &second);
  gst_buffer_unref (class_map);
  gst_buffer_unref (instance_map);
  existing = gst_buffer_add_video_region_of_interest_meta (in, "blob", 0, 0, 32, 64);
  existing->id = 0;

  out = element_test_push_pull (harness, in);
  fail_unless_equals_int (count_rois (out), 2);
  assert_ids_numbered (out);
  existing = gst_buffer_get_video_region_of_interest_meta_id (out, 0);
  added = gst_buffer_get_video_region_of_interest_meta_id (out, 1);
  fail_unless_equals_int (existing->x, 0);
  fail_unless_equals_string (g_quark_to_string (added->roi_type), "blob");
  fail_unless (added->x == 48 && added->y == 0 && added->w == 16 && added->h == 64);

  tags = read_tags (existing, label_list, N_LABELS);
  assert_tags_rank (&tags, context, labels, labels, 1e-5);
  tags = read_tags (added, label_list, N_LABELS);
  assert_tags_rank (&tags, context, labels + dim, labels, 1e-5);

  detection = gst_video_region_of_interest_meta_get_param (added, "detection");
  fail_unless (detection != NULL);
  fail_unless (gst_structure_get_double (detection, "x_min", &x_min));
  fail_unless (gst_structure_get_double (detection, "x_max", &x_max));
  fail_unless (gst_structure_get_double (detection, "confidence", &confidence));
  fail_unless_equals_float (x_min, 0.75);
  fail_unless_equals_float (x_max, 1.0);
  fail_unless_equals_float (confidence, 0.5);
  fail_unless_equals_string (gst_structure_get_string (detection, "label"), "blob");
  gst_buffer_unref (out);
  gst_harness_teardown (harness);
}
GST_END_TEST;

/* umgclipseg then umgcliptag in one pipeline: every segment ends up as exactly one ROI (things
 * keep umgclipseg's, stuff gets new ones), tagged with the tagger's own labels. */
GST_START_TEST (test_segments_after_umgclipseg)
{
  const gchar *const colours[] = { "red", "green", "blue", NULL };
  g_autofree gchar *description = g_strdup_printf (
      "umgclipseg model=%s device=%s schedule=ordered mode=panoptic labels=sky,road,car,person "
      "stuff-labels=sky,road threshold=0 min-area=0 ! umgcliptag model=%s device=%s "
      "schedule=ordered inference-region=segments labels=red,green,blue threshold=0 top-k=2",
      element_test_model (), element_test_device (), element_test_model (), element_test_device ());
  GstHarness *harness = gst_harness_new_parse (description);
  GstUmgClipSegmentationMeta *seg;
  GstBuffer *out;

  gst_harness_set_src_caps_str (harness,
                                "video/x-raw,format=RGB,width=64,height=48,framerate=30/1");
  out = element_test_push_pull (harness, element_test_frame (harness, 4, 0));
  seg = gst_buffer_get_umgclip_segmentation_meta (out);
  fail_unless (seg != NULL);
  fail_unless (seg->segments->len > 0);
  fail_unless_equals_int (count_rois (out), seg->segments->len);
  assert_ids_numbered (out);
  for (guint i = 0; i < seg->segments->len; i++)
    {
      const GstUmgClipSegment *segment = &g_array_index (seg->segments, GstUmgClipSegment, i);
      GstVideoRegionOfInterestMeta *match = NULL;
      gpointer state = NULL;
      GstMeta *meta;
      while ((meta = gst_buffer_iterate_meta_filtered (out, &state,
                                                       GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)))
        {
          GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
          if (roi->roi_type == g_quark_from_string (seg->labels[segment->label_id])
              && (gint) roi->x == segment->x && (gint) roi->y == segment->y
              && (gint) roi->w == segment->w && (gint) roi->h == segment->h)
            match = roi;
        }
      fail_unless (match != NULL, "segment %u has no ROI", segment->id);
      fail_unless_equals_int (read_tags (match, colours, 3).n, 2);
    }
  gst_buffer_unref (out);
  gst_harness_teardown (harness);
}
GST_END_TEST;

static gboolean
same_tags (GstVideoRegionOfInterestMeta *a, GstVideoRegionOfInterestMeta *b)
{
  return gst_structure_is_equal (gst_video_region_of_interest_meta_get_param (a, "umgclip"),
                                 gst_video_region_of_interest_meta_get_param (b, "umgclip"));
}

GST_START_TEST (test_inference_interval_full_frame)
{
  g_autoptr (GstBus) bus = gst_bus_new ();
  GstElement *element = make_tagger ("inference-interval", 3, NULL);
  GstHarness *harness;
  GstBuffer *outs[4];

  gst_element_set_bus (element, bus);
  harness
      = element_test_harness (element, "video/x-raw,format=RGBA,width=40,height=40,framerate=30/1");
  for (guint i = 0; i < 4; i++)
    {
      outs[i]
          = element_test_push_pull (harness, element_test_frame (harness, i, i * GST_SECOND / 30));
      fail_unless_equals_int (count_rois (outs[i]), 1);
      assert_ids_numbered (outs[i]);
    }
  fail_unless_equals_int (element_test_count_inferences (bus), 2);
  /* frames 1 and 2 carry frame 0's tags although their content differs */
  for (guint i = 1; i < 3; i++)
    fail_unless (same_tags (gst_buffer_get_video_region_of_interest_meta_id (outs[i], 0),
                            gst_buffer_get_video_region_of_interest_meta_id (outs[0], 0)));
  fail_unless (!same_tags (gst_buffer_get_video_region_of_interest_meta_id (outs[3], 0),
                           gst_buffer_get_video_region_of_interest_meta_id (outs[0], 0)));
  for (guint i = 0; i < 4; i++)
    gst_buffer_unref (outs[i]);
  gst_element_set_bus (element, NULL);
  gst_harness_teardown (harness);
}
GST_END_TEST;

/* Upstream ROIs of skipped frames take the tags of the overlapping ROI of the last inference;
 * ROIs elsewhere or of another type get none, and nothing is duplicated. */
GST_START_TEST (test_inference_interval_roi_list)
{
  GstHarness *harness
      = element_test_harness (make_tagger ("inference-region", 1, "inference-interval", 2, NULL),
                              "video/x-raw,format=RGB,width=64,height=48,framerate=30/1");
  GstBuffer *first = element_test_frame (harness, 1, 0),
            *second = element_test_frame (harness, 2, GST_SECOND / 30);
  GstBuffer *out_first, *out_second;

  gst_buffer_add_video_region_of_interest_meta (first, "car", 10, 10, 30, 20);
  gst_buffer_add_video_region_of_interest_meta (first, "person", 40, 0, 20, 40);
  out_first = element_test_push_pull (harness, first);
  /* the car moved two pixels; a new person appeared elsewhere; a dog where the car was */
  gst_buffer_add_video_region_of_interest_meta (second, "car", 12, 11, 30, 20);
  gst_buffer_add_video_region_of_interest_meta (second, "person", 0, 30, 10, 10);
  gst_buffer_add_video_region_of_interest_meta (second, "dog", 10, 10, 30, 20);
  out_second = element_test_push_pull (harness, second);

  fail_unless_equals_int (count_rois (out_second), 3);
  assert_ids_numbered (out_second);
  fail_unless (same_tags (find_roi (out_second, "car"), find_roi (out_first, "car")));
  fail_unless (
      gst_video_region_of_interest_meta_get_param (find_roi (out_second, "person"), "umgclip")
      == NULL);
  fail_unless (gst_video_region_of_interest_meta_get_param (find_roi (out_second, "dog"), "umgclip")
               == NULL);
  gst_buffer_unref (out_first);
  gst_buffer_unref (out_second);
  gst_harness_teardown (harness);
}
GST_END_TEST;

/* Upstream ROIs numbered 0..1 keep their ids; the frame ROI becomes 2. */
GST_START_TEST (test_ids_with_upstream_rois)
{
  GstHarness *harness = element_test_harness (
      make_tagger (NULL), "video/x-raw,format=RGB,width=32,height=32,framerate=30/1");
  GstBuffer *in = element_test_frame (harness, 0, 0), *out;
  GstVideoRegionOfInterestMeta *a
      = gst_buffer_add_video_region_of_interest_meta (in, "a", 0, 0, 4, 4);
  GstVideoRegionOfInterestMeta *b
      = gst_buffer_add_video_region_of_interest_meta (in, "b", 4, 4, 4, 4);
  a->id = 1;
  b->id = 0;
  b->parent_id = 1;
  out = element_test_push_pull (harness, in);
  fail_unless_equals_int (count_rois (out), 3);
  assert_ids_numbered (out);
  fail_unless_equals_string (
      g_quark_to_string (gst_buffer_get_video_region_of_interest_meta_id (out, 1)->roi_type), "a");
  fail_unless_equals_int (find_roi (out, "b")->parent_id, 1);
  fail_unless_equals_string (
      g_quark_to_string (gst_buffer_get_video_region_of_interest_meta_id (out, 2)->roi_type),
      "frame");
  gst_buffer_unref (out);
  gst_harness_teardown (harness);
}
GST_END_TEST;

GST_START_TEST (test_errors)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GError) stream_error = NULL;
  g_autoptr (GstBus) bus = gst_bus_new ();
  GstElement *pipeline, *element;
  GstHarness *harness;
  GstMessage *message;

  element_test_assert_start_error (make_tagger ("labels", "", NULL), "labels");
  element_test_assert_start_error (make_tagger ("labels", " , ,", NULL), "labels");
  /* Text that is not UTF-8 (Latin-1 "café") is named, with its first bad byte, rather than
   * ranked as something else: the property, and a labels-file. */
  element_test_assert_start_error (
      make_tagger ("labels", "dog,caf\xe9", NULL),
      "labels 'dog,caf\xef\xbf\xbd' is not UTF-8 text: byte 0xe9 at offset 7");
  {
    g_autofree gchar *dir = g_dir_make_tmp ("umgclip-labels-XXXXXX", NULL);
    g_autofree gchar *path = g_build_filename (dir, "latin1.txt", NULL);
    g_autofree gchar *expected = NULL;
    fail_unless (g_file_set_contents (path, "dog\ncaf\xe9\n", -1, NULL));
    expected = g_strdup_printf ("labels-file '%s' is not UTF-8 text: byte 0xe9 at offset 7", path);
    element_test_assert_start_error (make_tagger ("labels", NULL, "labels-file", path, NULL),
                                     expected);
    g_unlink (path);
    g_rmdir (dir);
  }

  pipeline
      = gst_parse_launch ("fakesrc ! umgcliptag inference-region=everywhere ! fakesink", &error);
  fail_unless (error != NULL);
  fail_unless (strstr (error->message, "inference-region") != NULL
                   && strstr (error->message, "everywhere") != NULL,
               "%s", error->message);
  if (pipeline != NULL)
    gst_object_unref (pipeline);

  /* Emptying the labels while playing: each frame is a failed inference (a warning) and, at
   * max-errors of them in a row, the stream stops with an error naming the labels. */
  element = make_tagger ("max-errors", 2, NULL);
  gst_element_set_bus (element, bus);
  harness
      = element_test_harness (element, "video/x-raw,format=RGB,width=32,height=32,framerate=30/1");
  g_object_set (element, "labels", "", NULL);
  for (guint i = 0; i < 2; i++)
    {
      GstBuffer *out;
      fail_unless_equals_int (
          gst_harness_push (harness, element_test_frame (harness, i, i * GST_SECOND)), GST_FLOW_OK);
      out = gst_harness_pull (harness);
      fail_unless (out != NULL);
      gst_buffer_unref (out);
    }
  fail_unless_equals_int (gst_harness_push (harness, element_test_frame (harness, 3, 0)),
                          GST_FLOW_ERROR);
  for (guint i = 0; i < 2; i++)
    {
      message = gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING);
      fail_unless (message != NULL, "warning %u missing", i);
      gst_message_unref (message);
    }
  message = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (message != NULL);
  gst_message_parse_error (message, &stream_error, NULL);
  fail_unless (strstr (stream_error->message, "labels") != NULL, "%s", stream_error->message);
  gst_message_unref (message);
  gst_element_set_bus (element, NULL);
  gst_harness_teardown (harness);
}
GST_END_TEST;

/* An input-size whose pass cannot fit the device memory (forced to 8 MiB) fails at start with
 * a message naming the size and the limit, before anything is allocated for it. */
GST_START_TEST (test_input_size_too_large)
{
  g_setenv ("UMGCLIP_MEMORY_LIMIT", "8M", TRUE);
  element_test_assert_start_error (make_tagger ("input-size", 1024, NULL),
                                   "input-size 1024 does not fit");
  element_test_assert_start_error (make_tagger ("input-size", 1024, NULL), "UMGCLIP_MEMORY_LIMIT");
  g_unsetenv ("UMGCLIP_MEMORY_LIMIT");
}
GST_END_TEST;

static Suite *
umgcliptag_suite (void)
{
  Suite *suite = suite_create ("umgcliptag");
  TCase *tc = tcase_create ("general");
  tcase_set_timeout (tc, 240);
  suite_add_tcase (suite, tc);
  tcase_add_test (tc, test_properties);
  tcase_add_test (tc, test_every_format_full_frame);
  tcase_add_test (tc, test_full_frame_matches_runtime);
  tcase_add_test (tc, test_roi_list_roi_align);
  tcase_add_test (tc, test_object_class_filter);
  tcase_add_test (tc, test_top_k_and_threshold);
  tcase_add_test (tc, test_labels_changed_in_playing);
  tcase_add_test (tc, test_crop_matches_runtime);
  tcase_add_test (tc, test_crop_every_format);
  tcase_add_test (tc, test_segments_from_meta);
  tcase_add_test (tc, test_segments_after_umgclipseg);
  tcase_add_test (tc, test_inference_interval_full_frame);
  tcase_add_test (tc, test_inference_interval_roi_list);
  tcase_add_test (tc, test_ids_with_upstream_rois);
  tcase_add_test (tc, test_errors);
  tcase_add_test (tc, test_input_size_too_large);
  return suite;
}

GST_CHECK_MAIN (umgcliptag);
