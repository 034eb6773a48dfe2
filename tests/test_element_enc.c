/* umgclipenc through GstHarness: embedding metas on every input format, agreement with the
 * runtime on the same input, inference-interval, renegotiation, errors and properties.
 * Environment: UMGCLIP_TEST_MODEL (model directory), UMGCLIP_TEST_DEVICE (cpu or vulkan). */
#include "element_test_util.h"

#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <math.h>
#include <string.h>

#include "umgclip.h"
#include "umgclipmeta.h"

static GstElement *
make_encoder (const gchar *first_property, ...)
{
  GstElement *element = element_test_make ("umgclipenc");
  va_list args;
  va_start (args, first_property);
  if (first_property != NULL)
    g_object_set_valist (G_OBJECT (element), first_property, args);
  va_end (args);
  return element;
}

static gint
model_embed_dim (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (UmgClipContext) context
      = umgclip_context_new (element_test_model (), UMGCLIP_DEVICE_CPU, 0, &error);
  fail_unless (context != NULL, "%s", error != NULL ? error->message : "");
  return umgclip_context_get_info (context)->embed_dim;
}

static gdouble
norm (const gfloat *v, guint n)
{
  gdouble sum = 0;
  for (guint i = 0; i < n; i++)
    sum += (gdouble) v[i] * v[i];
  return sqrt (sum);
}

static gdouble
cosine (const gfloat *a, const gfloat *b, guint n)
{
  gdouble dot = 0;
  for (guint i = 0; i < n; i++)
    dot += (gdouble) a[i] * b[i];
  return dot / (norm (a, n) * norm (b, n));
}

/* Pushes one frame and returns the output buffer, which must carry an embedding meta. */
static GstBuffer *
push_and_pull (GstHarness *harness, guint seed, GstClockTime pts)
{
  GstBuffer *out;
  fail_unless_equals_int (gst_harness_push (harness, element_test_frame (harness, seed, pts)),
                          GST_FLOW_OK);
  out = gst_harness_pull (harness);
  fail_unless (out != NULL);
  fail_unless (gst_buffer_get_umgclip_embedding_meta (out) != NULL);
  return out;
}

GST_START_TEST (test_every_format)
{
  const gchar *formats[] = { "RGB", "RGBA", "RGBx", "BGRx", "BGRA", "NV12", "I420" };
  const gint dim = model_embed_dim ();

  for (guint f = 0; f < G_N_ELEMENTS (formats); f++)
    {
      g_autofree gchar *caps
          = g_strdup_printf ("video/x-raw,format=%s,width=50,height=38,framerate=30/1", formats[f]);
      GstHarness *harness = element_test_harness (make_encoder (NULL), caps);
      GstBuffer *out = push_and_pull (harness, f, 0);
      GstUmgClipEmbeddingMeta *meta = gst_buffer_get_umgclip_embedding_meta (out);

      GST_INFO ("format %s", formats[f]);
      fail_unless_equals_int (meta->dim, dim);
      fail_unless_equals_string (meta->model, "tiny-hf-f16");
      fail_unless (fabs (norm (meta->embedding, dim) - 1.0) < 1e-5);
      /* Dense by default: a 32 px input of 8 px patches is a 4 x 4 grid of raw (not
       * normalised) projected cells. */
      fail_unless (meta->dense != NULL);
      fail_unless_equals_string (meta->dense_mode, "naclip");
      fail_unless_equals_int (meta->grid_width, 4);
      fail_unless_equals_int (meta->grid_height, 4);
      fail_unless_equals_int (meta->input_width, 32);
      for (guint cell = 0; cell < 16; cell++)
        fail_unless (fabs (norm (meta->dense + cell * dim, dim) - 1.0) > 1e-3);
      gst_buffer_unref (out);
      gst_harness_teardown (harness);
    }
}
GST_END_TEST;

GST_START_TEST (test_content_decides_embedding)
{
  const gint dim = model_embed_dim ();
  GstHarness *harness
      = element_test_harness (make_encoder ("dense", FALSE, NULL),
                              "video/x-raw,format=BGRx,width=64,height=48,framerate=30/1");
  GstBuffer *first = push_and_pull (harness, 1, 0);
  GstBuffer *same = push_and_pull (harness, 1, GST_SECOND / 30);
  GstBuffer *other = push_and_pull (harness, 4, 2 * GST_SECOND / 30);
  const gfloat *a = gst_buffer_get_umgclip_embedding_meta (first)->embedding;
  const gfloat *b = gst_buffer_get_umgclip_embedding_meta (same)->embedding;
  const gfloat *c = gst_buffer_get_umgclip_embedding_meta (other)->embedding;

  fail_unless (gst_buffer_get_umgclip_embedding_meta (first)->dense == NULL);
  fail_unless (memcmp (a, b, dim * sizeof (gfloat)) == 0);
  fail_unless (cosine (a, c, dim) < 0.9999, "different frames, cosine %f", cosine (a, c, dim));
  gst_buffer_unref (first);
  gst_buffer_unref (same);
  gst_buffer_unref (other);
  gst_harness_teardown (harness);
}
GST_END_TEST;

/* A 64x64 RGB frame resized to the 32 px input with half-pixel bilinear sampling is exactly
 * the mean of each 2x2 block: build that tensor here and ask the runtime directly. */
GST_START_TEST (test_matches_runtime)
{
  g_autoptr (GError) error = NULL;
  UmgClipDeviceKind kind;
  gint index;
  g_autoptr (UmgClipContext) context = NULL;
  const gfloat mean[3] = { 0.48145466f, 0.4578275f, 0.40821073f };
  const gfloat std[3] = { 0.26862954f, 0.26130258f, 0.27577711f };
  GstHarness *harness
      = element_test_harness (make_encoder ("dense-mode", 1 /* clearclip */, NULL),
                              "video/x-raw,format=RGB,width=64,height=64,framerate=30/1");
  GstBuffer *in = element_test_frame (harness, 3, 0), *out;
  GstUmgClipEmbeddingMeta *meta;
  gfloat pixels[3 * 32 * 32];
  GstMapInfo map;
  gint dim;

  fail_unless (umgclip_parse_device (element_test_device (), &kind, &index, &error));
  context = umgclip_context_new (element_test_model (), kind, index, &error);
  fail_unless (context != NULL, "%s", error != NULL ? error->message : "");
  dim = umgclip_context_get_info (context)->embed_dim;

  fail_unless (gst_buffer_map (in, &map, GST_MAP_READ));
  for (gint c = 0; c < 3; c++)
    for (gint y = 0; y < 32; y++)
      for (gint x = 0; x < 32; x++)
        {
          const gint stride = 64 * 3;
          const guint8 *p = map.data + 2 * y * stride + 2 * x * 3 + c;
          gfloat value = (p[0] + p[3] + p[stride] + p[stride + 3]) / (4 * 255.0f);
          pixels[c * 32 * 32 + y * 32 + x] = (value - mean[c]) / std[c];
        }
  gst_buffer_unmap (in, &map);

  {
    g_autofree gfloat *embedding = g_new (gfloat, dim);
    g_autofree gfloat *dense = g_new (gfloat, 16 * dim);
    UmgClipImageRequest request
        = { .dense_mode = UMGCLIP_DENSE_CLEARCLIP, .embedding = embedding, .dense = dense };
    fail_unless (umgclip_encode_image (context, pixels, 32, 32, &request, &error), "%s",
                 error != NULL ? error->message : "");
    umgclip_l2_normalize (embedding, dim);

    fail_unless_equals_int (gst_harness_push (harness, in), GST_FLOW_OK);
    out = gst_harness_pull (harness);
    meta = gst_buffer_get_umgclip_embedding_meta (out);
    fail_unless (meta != NULL && meta->dense != NULL);
    fail_unless_equals_string (meta->dense_mode, "clearclip");
    for (gint i = 0; i < dim; i++)
      fail_unless (fabsf (meta->embedding[i] - embedding[i]) < 1e-5, "embedding[%d] %f vs %f", i,
                   meta->embedding[i], embedding[i]);
    for (gint i = 0; i < 16 * dim; i++)
      fail_unless (fabsf (meta->dense[i] - dense[i]) < 1e-4 * (1.0f + fabsf (dense[i])),
                   "dense[%d] %f vs %f", i, meta->dense[i], dense[i]);
  }
  gst_buffer_unref (out);
  gst_harness_teardown (harness);
}
GST_END_TEST;

/* Element messages "umgclip-inference" on the bus, as pts values. */
static GArray *
inference_message_pts (GstBus *bus)
{
  GArray *pts = g_array_new (FALSE, FALSE, sizeof (guint64));
  GstMessage *message;
  while ((message = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT)) != NULL)
    {
      const GstStructure *structure = gst_message_get_structure (message);
      if (gst_structure_has_name (structure, "umgclip-inference"))
        {
          guint64 value = 0, time = 0;
          fail_unless (gst_structure_get_uint64 (structure, "pts", &value));
          fail_unless (gst_structure_get_uint64 (structure, "inference-time", &time));
          fail_unless (time > 0);
          g_array_append_val (pts, value);
        }
      gst_message_unref (message);
    }
  return pts;
}

GST_START_TEST (test_inference_interval)
{
  const gint dim = model_embed_dim ();
  const GstClockTime frame = GST_SECOND / 30;
  g_autoptr (GstBus) bus = gst_bus_new ();
  GstElement *element = make_encoder ("inference-interval", 3, NULL);
  GstHarness *harness;
  GstBuffer *outs[7];
  g_autoptr (GArray) pts = NULL;

  gst_element_set_bus (element, bus);
  harness
      = element_test_harness (element, "video/x-raw,format=RGBx,width=40,height=40,framerate=30/1");
  for (guint i = 0; i < 7; i++)
    outs[i] = push_and_pull (harness, i, i * frame);

  pts = inference_message_pts (bus);
  fail_unless_equals_int (pts->len, 3);
  fail_unless_equals_uint64 (g_array_index (pts, guint64, 0), 0);
  fail_unless_equals_uint64 (g_array_index (pts, guint64, 1), 3 * frame);
  fail_unless_equals_uint64 (g_array_index (pts, guint64, 2), 6 * frame);

  /* Frames 1 and 2 carry frame 0's result although their content differs. */
  for (guint i = 1; i < 3; i++)
    fail_unless (memcmp (gst_buffer_get_umgclip_embedding_meta (outs[i])->embedding,
                         gst_buffer_get_umgclip_embedding_meta (outs[0])->embedding,
                         dim * sizeof (gfloat))
                 == 0);
  fail_unless (gst_buffer_get_umgclip_embedding_meta (outs[1])->dense != NULL);
  fail_unless (memcmp (gst_buffer_get_umgclip_embedding_meta (outs[3])->embedding,
                       gst_buffer_get_umgclip_embedding_meta (outs[0])->embedding,
                       dim * sizeof (gfloat))
               != 0);
  for (guint i = 0; i < 7; i++)
    gst_buffer_unref (outs[i]);
  gst_element_set_bus (element, NULL);
  gst_harness_teardown (harness);
}
GST_END_TEST;

GST_START_TEST (test_renegotiation)
{
  g_autoptr (GstBus) bus = gst_bus_new ();
  GstElement *element = make_encoder ("inference-interval", 100, NULL);
  GstHarness *harness;
  GstBuffer *before, *after;
  g_autoptr (GArray) pts = NULL;

  gst_element_set_bus (element, bus);
  harness
      = element_test_harness (element, "video/x-raw,format=RGB,width=48,height=40,framerate=30/1");
  before = push_and_pull (harness, 2, 0);
  gst_harness_set_src_caps_str (harness,
                                "video/x-raw,format=NV12,width=96,height=80,framerate=30/1");
  after = push_and_pull (harness, 2, GST_SECOND / 30);
  fail_unless_equals_int (gst_buffer_get_size (after), 96 * 80 * 3 / 2);
  /* A new size runs inference again even inside the interval: the old result described
   * another frame. */
  pts = inference_message_pts (bus);
  fail_unless_equals_int (pts->len, 2);
  fail_unless (memcmp (gst_buffer_get_umgclip_embedding_meta (before)->embedding,
                       gst_buffer_get_umgclip_embedding_meta (after)->embedding,
                       gst_buffer_get_umgclip_embedding_meta (after)->dim * sizeof (gfloat))
               != 0);
  gst_buffer_unref (before);
  gst_buffer_unref (after);
  gst_element_set_bus (element, NULL);
  gst_harness_teardown (harness);
}
GST_END_TEST;

GST_START_TEST (test_input_size)
{
  GstHarness *harness
      = element_test_harness (make_encoder ("input-size", 64, NULL),
                              "video/x-raw,format=I420,width=80,height=60,framerate=30/1");
  GstBuffer *out = push_and_pull (harness, 5, 0);
  GstUmgClipEmbeddingMeta *meta = gst_buffer_get_umgclip_embedding_meta (out);
  fail_unless_equals_int (meta->input_width, 64);
  fail_unless_equals_int (meta->input_height, 64);
  fail_unless_equals_int (meta->grid_width, 8);
  fail_unless_equals_int (meta->grid_height, 8);
  gst_buffer_unref (out);
  gst_harness_teardown (harness);
}
GST_END_TEST;

/* A second element with the same model and settings reuses the first one's features. */
GST_START_TEST (test_downstream_reuses_features)
{
  g_autoptr (GstBus) bus = gst_bus_new ();
  g_autofree gchar *description = g_strdup_printf (
      "umgclipenc name=first model=%s device=%s schedule=ordered ! umgclipenc name=second "
      "model=%s device=%s schedule=ordered",
      element_test_model (), element_test_device (), element_test_model (), element_test_device ());
  GstHarness *harness = gst_harness_new_parse (description);
  GstBuffer *out;
  GstMessage *message;
  guint from_first = 0, from_second = 0;

  gst_element_set_bus (harness->element, bus);
  gst_harness_set_src_caps_str (harness,
                                "video/x-raw,format=RGB,width=32,height=32,framerate=30/1");
  out = push_and_pull (harness, 1, 0);
  while ((message = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT)) != NULL)
    {
      gboolean backbone = TRUE;
      fail_unless (
          gst_structure_get_boolean (gst_message_get_structure (message), "backbone", &backbone));
      if (g_str_equal (GST_OBJECT_NAME (GST_MESSAGE_SRC (message)), "first"))
        {
          from_first++;
          fail_unless (backbone);
        }
      else
        {
          from_second++;
          fail_unless (!backbone);
        }
      gst_message_unref (message);
    }
  fail_unless_equals_int (from_first, 1);
  fail_unless_equals_int (from_second, 1);
  gst_buffer_unref (out);
  gst_element_set_bus (harness->element, NULL);
  gst_harness_teardown (harness);
}
GST_END_TEST;

GST_START_TEST (test_errors_name_the_problem)
{
  element_test_assert_start_error (make_encoder ("model", "/nonexistent/model-dir", NULL),
                                   "/nonexistent/model-dir");
  element_test_assert_start_error (make_encoder ("device", "tpu", NULL), "tpu");
  element_test_assert_start_error (make_encoder ("labels-file", "/nonexistent/labels.txt", NULL),
                                   "/nonexistent/labels.txt");
}
GST_END_TEST;

GST_START_TEST (test_properties)
{
  GstElement *element = gst_element_factory_make ("umgclipenc", NULL);
  g_autofree gchar *model = NULL, *device = NULL, *labels = NULL, *template = NULL;
  guint interval = 0, input_size = 1;
  gdouble threshold = 0;
  gint dense_mode = -1;
  gboolean dense = FALSE, qos = TRUE;

  g_object_get (element, "model", &model, "device", &device, "inference-interval", &interval,
                "labels", &labels, "prompt-template", &template, "threshold", &threshold,
                "dense-mode", &dense_mode, "input-size", &input_size, "dense", &dense, "qos", &qos,
                NULL);
  /* The default model follows UMGCLIP_MODEL, which meson sets for this test. */
  fail_unless_equals_string (model, g_getenv ("UMGCLIP_MODEL"));
  fail_unless_equals_string (device, "auto");
  fail_unless_equals_int (interval, 1);
  fail_unless (labels == NULL);
  fail_unless_equals_string (template, "a photo of a {}.");
  fail_unless_equals_float (threshold, 0.5);
  fail_unless_equals_int (dense_mode, 0);
  fail_unless_equals_int (input_size, 0);
  fail_unless (dense);
  fail_unless (!qos);

  gst_util_set_object_arg (G_OBJECT (element), "dense-mode", "sclip");
  g_object_set (element, "labels", "cat, dog", "inference-interval", 5, "qos", TRUE, NULL);
  g_clear_pointer (&labels, g_free);
  g_object_get (element, "dense-mode", &dense_mode, "labels", &labels, "inference-interval",
                &interval, "qos", &qos, NULL);
  fail_unless_equals_int (dense_mode, UMGCLIP_DENSE_SCLIP);
  fail_unless_equals_string (labels, "cat, dog");
  fail_unless_equals_int (interval, 5);
  fail_unless (qos);
  gst_object_unref (element);
}
GST_END_TEST;

static Suite *
umgclipenc_suite (void)
{
  Suite *suite = suite_create ("umgclipenc");
  TCase *tc = tcase_create ("general");
  tcase_set_timeout (tc, 240);
  suite_add_tcase (suite, tc);
  tcase_add_test (tc, test_properties);
  tcase_add_test (tc, test_every_format);
  tcase_add_test (tc, test_content_decides_embedding);
  tcase_add_test (tc, test_matches_runtime);
  tcase_add_test (tc, test_inference_interval);
  tcase_add_test (tc, test_renegotiation);
  tcase_add_test (tc, test_input_size);
  tcase_add_test (tc, test_downstream_reuses_features);
  tcase_add_test (tc, test_errors_name_the_problem);
  return suite;
}

GST_CHECK_MAIN (umgclipenc);
