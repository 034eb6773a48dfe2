/* Shared pieces of the element tests (element_test_util.h). */
#include "element_test_util.h"

#include <gst/video/video.h>
#include <string.h>

#include "umgclipmeta.h"

const gchar *
element_test_model (void)
{
  return g_getenv ("UMGCLIP_TEST_MODEL");
}

const gchar *
element_test_device (void)
{
  const gchar *device = g_getenv ("UMGCLIP_TEST_DEVICE");
  return device != NULL ? device : "cpu";
}

GstElement *
element_test_make (const gchar *factory)
{
  GstElement *element = gst_element_factory_make (factory, NULL);
  fail_unless (element != NULL, "%s not found: is GST_PLUGIN_PATH set?", factory);
  g_object_set (element, "model", element_test_model (), "device", element_test_device (), NULL);
  /* GstHarness reports a live source, for which auto means latest: these tests check each
   * frame's own result, which ordered gives (test_element_schedule covers the others) */
  if (g_object_class_find_property (G_OBJECT_GET_CLASS (element), "schedule") != NULL)
    gst_util_set_object_arg (G_OBJECT (element), "schedule", "ordered");
  return element;
}

GstHarness *
element_test_harness (GstElement *element, const gchar *caps)
{
  GstHarness *harness = gst_harness_new_with_element (element, "sink", "src");
  gst_harness_set_src_caps_str (harness, caps);
  return harness;
}

GstBuffer *
element_test_frame (GstHarness *harness, guint seed, GstClockTime pts)
{
  g_autoptr (GstCaps) caps = gst_pad_get_current_caps (harness->srcpad);
  GstVideoInfo info;
  GstVideoFrame frame;
  GstBuffer *buffer;

  fail_unless (gst_video_info_from_caps (&info, caps));
  buffer = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&info), NULL);
  fail_unless (gst_video_frame_map (&frame, &info, buffer, GST_MAP_WRITE));
  for (guint plane = 0; plane < GST_VIDEO_FRAME_N_PLANES (&frame); plane++)
    {
      guint8 *data = GST_VIDEO_FRAME_PLANE_DATA (&frame, plane);
      gint stride = GST_VIDEO_FRAME_PLANE_STRIDE (&frame, plane);
      gint rows = GST_VIDEO_FRAME_COMP_HEIGHT (&frame, plane == 0 ? 0 : 1);
      for (gint y = 0; y < rows; y++)
        for (gint x = 0; x < stride; x++)
          data[y * stride + x] = (guint8) ((x * (3 + seed) + y * (5 + 2 * seed) + plane * 71
                                            + seed * 37 + ((x / 8 + y / 8 + seed) % 2) * 90)
                                           & 0xff);
    }
  gst_video_frame_unmap (&frame);
  GST_BUFFER_PTS (buffer) = pts;
  GST_BUFFER_DURATION (buffer) = GST_SECOND / 30;
  return buffer;
}

/* Starting element fails, and the bus gets an error from it whose message contains expected.
 * Takes the element's reference. */
void
element_test_assert_start_error (GstElement *element, const gchar *expected)
{
  g_autoptr (GstBus) bus = gst_bus_new ();
  g_autoptr (GError) error = NULL;
  g_autofree gchar *debug = NULL;
  GstMessage *message;

  gst_element_set_bus (element, bus);
  fail_unless_equals_int (gst_element_set_state (element, GST_STATE_PAUSED),
                          GST_STATE_CHANGE_FAILURE);
  message = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (message != NULL);
  fail_unless (GST_MESSAGE_SRC (message) == GST_OBJECT (element));
  gst_message_parse_error (message, &error, &debug);
  fail_unless (strstr (error->message, expected) != NULL, "'%s' does not name '%s'", error->message,
               expected);
  gst_message_unref (message);
  gst_element_set_state (element, GST_STATE_NULL);
  gst_element_set_bus (element, NULL);
  gst_object_unref (element);
}

guint
element_test_count_inferences (GstBus *bus)
{
  GstMessage *message;
  guint n = 0;
  while ((message = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT)) != NULL)
    {
      if (gst_structure_has_name (gst_message_get_structure (message), "umgclip-inference"))
        n++;
      gst_message_unref (message);
    }
  return n;
}

GstBuffer *
element_test_push_pull (GstHarness *harness, GstBuffer *in)
{
  GstBuffer *out;
  fail_unless_equals_int (gst_harness_push (harness, in), GST_FLOW_OK);
  out = gst_harness_pull (harness);
  fail_unless (out != NULL);
  return out;
}

void
element_test_add_dense_meta (GstBuffer *buffer, const gfloat *labels, guint dim, guint input_size,
                             guint a, guint b, guint split)
{
  const guint grid = input_size / 8;
  g_autofree gfloat *dense = g_new (gfloat, grid * grid * dim);
  GstUmgClipEmbeddingMeta *meta
      = gst_buffer_add_umgclip_embedding_meta (buffer, "tiny-hf-f16", labels + a * dim, dim);
  for (guint row = 0; row < grid; row++)
    for (guint col = 0; col < grid; col++)
      memcpy (dense + (row * grid + col) * dim, labels + (col < split ? a : b) * dim,
              dim * sizeof (gfloat));
  gst_umgclip_embedding_meta_set_dense (meta, "naclip", input_size, input_size, grid, grid, dense);
}
