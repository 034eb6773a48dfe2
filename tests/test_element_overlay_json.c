/* umgclipjson and umgclipoverlay through GstHarness, on buffers whose metas the test attaches
 * itself: the JSON read back field by field, JSON Lines files, and the exact pixels the overlay
 * paints (and does not paint). No model is needed. */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <json-glib/json-glib.h>
#include <glib/gstdio.h>
#include <string.h>

#include "umgclipmeta.h"

#define WIDTH 64
#define HEIGHT 48
#define GREY 100

/* ---- frames and metas ---- */

static GstBuffer *
make_frame (const gchar *format, guint8 fill, GstClockTime pts)
{
  GstVideoInfo info;
  GstBuffer *buffer;
  fail_unless (
      gst_video_info_set_format (&info, gst_video_format_from_string (format), WIDTH, HEIGHT));
  buffer = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&info), NULL);
  gst_buffer_memset (buffer, 0, fill, GST_VIDEO_INFO_SIZE (&info));
  GST_BUFFER_PTS (buffer) = pts;
  GST_BUFFER_DURATION (buffer) = GST_SECOND / 30;
  return buffer;
}

static gchar *
caps_string (const gchar *format)
{
  return g_strdup_printf ("video/x-raw,format=%s,width=%d,height=%d,framerate=30/1", format, WIDTH,
                          HEIGHT);
}

static GstVideoRegionOfInterestMeta *
add_roi (GstBuffer *buffer, const gchar *type, gint id, guint x, guint y, guint w, guint h)
{
  GstVideoRegionOfInterestMeta *roi
      = gst_buffer_add_video_region_of_interest_meta (buffer, type, x, y, w, h);
  roi->id = id;
  return roi;
}

static void
tag_roi (GstVideoRegionOfInterestMeta *roi)
{
  const gchar *labels[] = { "cat", "dog", "car" };
  const guint label_ids[] = { 0, 1, 2 };
  const gdouble scores[] = { 0.2, 0.7, 0.1 };
  gst_umgclip_roi_set_tags (roi, "tiny-hf-f16", labels, label_ids, scores, 3, GST_CLOCK_TIME_NONE);
}

/* An 8×6 mask over the frame. Semantic: columns 0-3 are label 0 ("sky"), columns 4-7 of rows
 * 0-2 label 1 ("car"), the rest no label. Panoptic adds an instance map that splits label 0
 * into segments 1 (rows 0-2) and 2 (rows 3-5) and makes the car segment 3. */
#define MASK_WIDTH 8
#define MASK_HEIGHT 6

static guint
mask_label (guint mx, guint my)
{
  if (mx < 4)
    return 0;
  return my < 3 ? 1 : GST_UMGCLIP_CLASS_NONE_8;
}

static guint
mask_segment (guint mx, guint my)
{
  if (mx < 4)
    return my < 3 ? 1 : 2;
  return my < 3 ? 3 : 0;
}

static GstUmgClipSegmentationMeta *
add_segmentation (GstBuffer *buffer, gboolean panoptic)
{
  const gchar *labels[] = { "sky", "car", NULL };
  g_autoptr (GstBuffer) class_map = gst_buffer_new_allocate (NULL, MASK_WIDTH * MASK_HEIGHT, NULL);
  g_autoptr (GstBuffer) instance_map = NULL;
  GstUmgClipSegmentationMeta *meta;
  GstMapInfo map;

  fail_unless (gst_buffer_map (class_map, &map, GST_MAP_WRITE));
  for (guint my = 0; my < MASK_HEIGHT; my++)
    for (guint mx = 0; mx < MASK_WIDTH; mx++)
      map.data[my * MASK_WIDTH + mx] = (guint8) mask_label (mx, my);
  gst_buffer_unmap (class_map, &map);
  if (panoptic)
    {
      instance_map = gst_buffer_new_allocate (NULL, 2 * MASK_WIDTH * MASK_HEIGHT, NULL);
      fail_unless (gst_buffer_map (instance_map, &map, GST_MAP_WRITE));
      for (guint my = 0; my < MASK_HEIGHT; my++)
        for (guint mx = 0; mx < MASK_WIDTH; mx++)
          GST_WRITE_UINT16_LE (map.data + 2 * (my * MASK_WIDTH + mx), mask_segment (mx, my));
      gst_buffer_unmap (instance_map, &map);
    }

  meta = gst_buffer_add_umgclip_segmentation_meta (buffer, WIDTH, HEIGHT, MASK_WIDTH, MASK_HEIGHT,
                                                   labels, class_map, instance_map);
  if (panoptic)
    {
      const GstUmgClipSegment segments[] = {
        { 1, 0, 0.75f, FALSE, 0, 0, 32, 24, 12 },
        { 2, 0, 0.5f, FALSE, 0, 24, 32, 24, 12 },
        { 3, 1, 0.875f, TRUE, 32, 0, 32, 24, 12 },
      };
      for (guint i = 0; i < G_N_ELEMENTS (segments); i++)
        gst_umgclip_segmentation_meta_add_segment (meta, &segments[i]);
    }
  return meta;
}

static const gfloat test_embedding[4] = { 0.5f, -0.5f, 0.5f, 0.5f };

/* ---- umgclipjson ---- */

static GstHarness *
make_json_harness (GstElement **element_out, GstBus **bus_out, const gchar *first_property, ...)
{
  GstElement *element = gst_element_factory_make ("umgclipjson", NULL);
  g_autofree gchar *caps = caps_string ("RGBA");
  GstHarness *harness;
  va_list args;

  fail_unless (element != NULL, "umgclipjson not found: is GST_PLUGIN_PATH set?");
  va_start (args, first_property);
  if (first_property != NULL)
    g_object_set_valist (G_OBJECT (element), first_property, args);
  va_end (args);
  if (bus_out != NULL)
    {
      *bus_out = gst_bus_new ();
      gst_element_set_bus (element, *bus_out);
    }
  gst_object_ref_sink (element);
  harness = gst_harness_new_with_element (element, "sink", "src");
  gst_harness_set_src_caps_str (harness, caps);
  if (element_out != NULL)
    *element_out = element;
  gst_object_unref (element);
  return harness;
}

/* The JSON object of the next "umgclip-json" element message on bus. */
static JsonObject *
pop_json_message (GstBus *bus, JsonParser *parser)
{
  g_autoptr (GstMessage) message = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT);
  g_autoptr (GError) error = NULL;
  const GstStructure *structure;
  const gchar *json;

  fail_unless (message != NULL, "no element message");
  structure = gst_message_get_structure (message);
  fail_unless (gst_structure_has_name (structure, "umgclip-json"));
  json = gst_structure_get_string (structure, "json");
  fail_unless (json != NULL);
  fail_unless (strchr (json, '\n') == NULL, "a frame's JSON must fit on one line");
  fail_unless (json_parser_load_from_data (parser, json, -1, &error), "%s: %s", json,
               error != NULL ? error->message : "");
  return json_node_get_object (json_parser_get_root (parser));
}

static void
assert_box (JsonObject *detection, gdouble x_min, gdouble y_min, gdouble x_max, gdouble y_max)
{
  JsonObject *box = json_object_get_object_member (detection, "bounding_box");
  fail_unless (box != NULL);
  fail_unless_equals_float (json_object_get_double_member (box, "x_min"), x_min);
  fail_unless_equals_float (json_object_get_double_member (box, "y_min"), y_min);
  fail_unless_equals_float (json_object_get_double_member (box, "x_max"), x_max);
  fail_unless_equals_float (json_object_get_double_member (box, "y_max"), y_max);
}

GST_START_TEST (test_json_content)
{
  GstBus *bus;
  GstElement *element;
  GstHarness *harness = make_json_harness (&element, &bus, "post-messages", TRUE, NULL);
  g_autoptr (JsonParser) parser = json_parser_new ();
  GstBuffer *buffer = make_frame ("RGBA", GREY, 2 * GST_SECOND);
  GstVideoRegionOfInterestMeta *tagged, *detected;
  JsonObject *root, *resolution, *object, *detection, *tag, *segment, *embedding;
  JsonArray *objects, *tags, *segments;

  /* Added out of id order: the objects must come out sorted by id. */
  detected = add_roi (buffer, "vehicle", 1, 32, 12, 16, 36);
  gst_video_region_of_interest_meta_add_param (
      detected, gst_structure_new ("detection", "x_min", G_TYPE_DOUBLE, 0.5, "y_min", G_TYPE_DOUBLE,
                                   0.25, "x_max", G_TYPE_DOUBLE, 0.75, "y_max", G_TYPE_DOUBLE, 1.0,
                                   "label", G_TYPE_STRING, "car", "label_id", G_TYPE_INT, 2,
                                   "confidence", G_TYPE_DOUBLE, 0.9, NULL));
  add_roi (buffer, "face", 2, 0, 0, 4, 4);
  tagged = add_roi (buffer, "person", 0, 8, 4, 16, 20);
  tag_roi (tagged);
  add_segmentation (buffer, TRUE);
  gst_buffer_add_umgclip_embedding_meta (buffer, "tiny-hf-f16", test_embedding, 4);

  gst_buffer_unref (gst_harness_push_and_pull (harness, buffer));
  root = pop_json_message (bus, parser);

  resolution = json_object_get_object_member (root, "resolution");
  fail_unless_equals_int (json_object_get_int_member (resolution, "width"), WIDTH);
  fail_unless_equals_int (json_object_get_int_member (resolution, "height"), HEIGHT);
  fail_unless_equals_int64 (json_object_get_int_member (root, "timestamp"), 2 * GST_SECOND);

  objects = json_object_get_array_member (root, "objects");
  fail_unless_equals_int (json_array_get_length (objects), 3);

  /* id 0: umgclip tags, no detector: box from pixels, class from the best tag. */
  object = json_array_get_object_element (objects, 0);
  fail_unless_equals_int (json_object_get_int_member (object, "id"), 0);
  fail_unless_equals_string (json_object_get_string_member (object, "roi_type"), "person");
  fail_unless_equals_int (json_object_get_int_member (object, "x"), 8);
  fail_unless_equals_int (json_object_get_int_member (object, "y"), 4);
  fail_unless_equals_int (json_object_get_int_member (object, "w"), 16);
  fail_unless_equals_int (json_object_get_int_member (object, "h"), 20);
  detection = json_object_get_object_member (object, "detection");
  assert_box (detection, 8.0 / WIDTH, 4.0 / HEIGHT, 24.0 / WIDTH, 24.0 / HEIGHT);
  fail_unless_equals_string (json_object_get_string_member (detection, "label"), "dog");
  fail_unless_equals_int (json_object_get_int_member (detection, "label_id"), 1);
  fail_unless_equals_float (json_object_get_double_member (detection, "confidence"), 0.7);
  tags = json_object_get_array_member (object, "tags");
  fail_unless_equals_int (json_array_get_length (tags), 3);
  {
    const gchar *expected_labels[] = { "dog", "cat", "car" };
    const gdouble expected_scores[] = { 0.7, 0.2, 0.1 };
    for (guint i = 0; i < 3; i++)
      {
        tag = json_array_get_object_element (tags, i);
        fail_unless_equals_string (json_object_get_string_member (tag, "label"),
                                   expected_labels[i]);
        fail_unless_equals_float (json_object_get_double_member (tag, "score"), expected_scores[i]);
      }
  }

  /* id 1: a detector's "detection" param is taken as it is. */
  object = json_array_get_object_element (objects, 1);
  fail_unless_equals_int (json_object_get_int_member (object, "id"), 1);
  fail_unless_equals_string (json_object_get_string_member (object, "roi_type"), "vehicle");
  detection = json_object_get_object_member (object, "detection");
  assert_box (detection, 0.5, 0.25, 0.75, 1.0);
  fail_unless_equals_string (json_object_get_string_member (detection, "label"), "car");
  fail_unless_equals_int (json_object_get_int_member (detection, "label_id"), 2);
  fail_unless_equals_float (json_object_get_double_member (detection, "confidence"), 0.9);
  fail_unless_equals_int (json_array_get_length (json_object_get_array_member (object, "tags")), 0);

  /* id 2: nothing but a type. */
  object = json_array_get_object_element (objects, 2);
  detection = json_object_get_object_member (object, "detection");
  fail_unless_equals_string (json_object_get_string_member (detection, "label"), "face");
  fail_unless (!json_object_has_member (detection, "confidence"));
  fail_unless (!json_object_has_member (detection, "label_id"));
  assert_box (detection, 0, 0, 4.0 / WIDTH, 4.0 / HEIGHT);

  segments = json_object_get_array_member (root, "segments");
  fail_unless_equals_int (json_array_get_length (segments), 3);
  segment = json_array_get_object_element (segments, 2);
  fail_unless_equals_int (json_object_get_int_member (segment, "id"), 3);
  fail_unless_equals_string (json_object_get_string_member (segment, "label"), "car");
  fail_unless_equals_int (json_object_get_int_member (segment, "label_id"), 1);
  fail_unless_equals_float (json_object_get_double_member (segment, "score"), 0.875);
  fail_unless (json_object_get_boolean_member (segment, "is_thing"));
  fail_unless_equals_int (json_object_get_int_member (segment, "x"), 32);
  fail_unless_equals_int (json_object_get_int_member (segment, "y"), 0);
  fail_unless_equals_int (json_object_get_int_member (segment, "w"), 32);
  fail_unless_equals_int (json_object_get_int_member (segment, "h"), 24);
  fail_unless_equals_int (json_object_get_int_member (segment, "area"), 12);
  segment = json_array_get_object_element (segments, 1);
  fail_unless_equals_string (json_object_get_string_member (segment, "label"), "sky");
  fail_unless (!json_object_get_boolean_member (segment, "is_thing"));
  fail_unless_equals_int (json_object_get_int_member (segment, "y"), 24);
  fail_unless_equals_float (json_object_get_double_member (segment, "score"), 0.5);

  embedding = json_object_get_object_member (root, "embedding");
  fail_unless_equals_string (json_object_get_string_member (embedding, "model"), "tiny-hf-f16");
  fail_unless_equals_int (json_object_get_int_member (embedding, "dim"), 4);
  fail_unless (!json_object_has_member (embedding, "vector"), "vector only on request");

  /* With include-embedding, changed while playing, the vector follows. */
  g_object_set (element, "include-embedding", TRUE, NULL);
  buffer = make_frame ("RGBA", GREY, 3 * GST_SECOND);
  gst_buffer_add_umgclip_embedding_meta (buffer, "tiny-hf-f16", test_embedding, 4);
  gst_buffer_unref (gst_harness_push_and_pull (harness, buffer));
  root = pop_json_message (bus, parser);
  fail_unless_equals_int (json_array_get_length (json_object_get_array_member (root, "objects")),
                          0);
  fail_unless (!json_object_has_member (root, "segments"));
  embedding = json_object_get_object_member (root, "embedding");
  {
    JsonArray *vector = json_object_get_array_member (embedding, "vector");
    fail_unless_equals_int (json_array_get_length (vector), 4);
    for (guint i = 0; i < 4; i++)
      fail_unless_equals_float (json_array_get_double_element (vector, i), test_embedding[i]);
  }

  /* Queued messages hold the element, which holds the bus. */
  gst_bus_set_flushing (bus, TRUE);
  gst_harness_teardown (harness);
  gst_object_unref (bus);
}
GST_END_TEST;

/* A region type that is not UTF-8 (a quark, which GStreamer does not check, unlike structure
 * strings) still gives a line that parses, each bad byte replaced by U+FFFD and the valid text
 * around it kept. */
GST_START_TEST (test_json_invalid_utf8)
{
  GstBus *bus;
  GstHarness *harness = make_json_harness (NULL, &bus, "post-messages", TRUE, NULL);
  g_autoptr (JsonParser) parser = json_parser_new ();
  GstBuffer *buffer = make_frame ("RGBA", GREY, 0);
  JsonObject *object;

  add_roi (buffer, "c\xa6\x8bt", 0, 0, 0, 8, 8);
  gst_buffer_unref (gst_harness_push_and_pull (harness, buffer));
  object = json_array_get_object_element (
      json_object_get_array_member (pop_json_message (bus, parser), "objects"), 0);
  fail_unless_equals_string (json_object_get_string_member (object, "roi_type"), "c\uFFFD\uFFFDt");
  fail_unless_equals_string (
      json_object_get_string_member (json_object_get_object_member (object, "detection"), "label"),
      "c\uFFFD\uFFFDt");

  gst_bus_set_flushing (bus, TRUE);
  gst_harness_teardown (harness);
  gst_object_unref (bus);
}
GST_END_TEST;

/* Several frames, several lines, complete once EOS has passed (before the element stops). */
GST_START_TEST (test_json_file)
{
  g_autofree gchar *directory = g_dir_make_tmp ("umgclipjson-XXXXXX", NULL);
  g_autofree gchar *path = g_build_filename (directory, "frames.jsonl", NULL);
  g_autofree gchar *contents = NULL;
  g_auto (GStrv) lines = NULL;
  GstHarness *harness = make_json_harness (NULL, NULL, "location", path, NULL);
  g_autoptr (JsonParser) parser = json_parser_new ();
  const guint n_frames = 4;

  for (guint i = 0; i < n_frames; i++)
    {
      GstBuffer *buffer = make_frame ("RGBA", GREY, i * GST_SECOND / 30);
      for (guint r = 0; r < i; r++)
        tag_roi (add_roi (buffer, "object", r, 2 * r, r, 8, 8));
      gst_buffer_unref (gst_harness_push_and_pull (harness, buffer));
    }
  fail_unless (gst_harness_push_event (harness, gst_event_new_eos ()));

  fail_unless (g_file_get_contents (path, &contents, NULL, NULL));
  fail_unless (g_str_has_suffix (contents, "\n"));
  lines = g_strsplit (contents, "\n", -1);
  fail_unless_equals_int (g_strv_length (lines), n_frames + 1); /* the last one is empty */
  for (guint i = 0; i < n_frames; i++)
    {
      g_autoptr (GError) error = NULL;
      JsonObject *root;
      JsonArray *objects;
      fail_unless (json_parser_load_from_data (parser, lines[i], -1, &error), "line %u: %s", i,
                   error != NULL ? error->message : "");
      root = json_node_get_object (json_parser_get_root (parser));
      fail_unless_equals_int64 (json_object_get_int_member (root, "timestamp"),
                                i * GST_SECOND / 30);
      objects = json_object_get_array_member (root, "objects");
      fail_unless_equals_int (json_array_get_length (objects), i);
      for (guint r = 0; r < i; r++)
        fail_unless_equals_int (
            json_object_get_int_member (json_array_get_object_element (objects, r), "x"), 2 * r);
    }
  gst_harness_teardown (harness);

  /* Starting again replaces the file. */
  harness = make_json_harness (NULL, NULL, "location", path, NULL);
  gst_buffer_unref (gst_harness_push_and_pull (harness, make_frame ("RGBA", GREY, 0)));
  gst_harness_teardown (harness);
  g_clear_pointer (&contents, g_free);
  fail_unless (g_file_get_contents (path, &contents, NULL, NULL));
  g_clear_pointer (&lines, g_strfreev);
  lines = g_strsplit (contents, "\n", -1);
  fail_unless_equals_int (g_strv_length (lines), 2);

  g_unlink (path);
  g_rmdir (directory);
}
GST_END_TEST;

/* The buffer leaves as it came: same bytes, same metas. */
GST_START_TEST (test_json_passes_buffers_unchanged)
{
  GstHarness *harness = make_json_harness (NULL, NULL, "post-messages", FALSE, NULL);
  GstBuffer *buffer = make_frame ("RGBA", GREY, 0);
  g_autoptr (GstBuffer) reference = NULL;
  GstBuffer *out;
  GstMapInfo in_map, out_map;

  gst_buffer_memset (buffer, 100, 7, 50);
  tag_roi (add_roi (buffer, "object", 0, 1, 2, 3, 4));
  add_segmentation (buffer, FALSE);
  reference = gst_buffer_copy_deep (buffer);
  out = gst_harness_push_and_pull (harness, buffer);
  fail_unless (gst_buffer_map (out, &out_map, GST_MAP_READ));
  fail_unless (gst_buffer_map (reference, &in_map, GST_MAP_READ));
  fail_unless_equals_int (out_map.size, in_map.size);
  fail_unless (memcmp (out_map.data, in_map.data, in_map.size) == 0);
  gst_buffer_unmap (reference, &in_map);
  gst_buffer_unmap (out, &out_map);
  fail_unless (gst_buffer_get_video_region_of_interest_meta (out) != NULL);
  fail_unless (gst_buffer_get_umgclip_segmentation_meta (out) != NULL);
  gst_buffer_unref (out);
  gst_harness_teardown (harness);
}
GST_END_TEST;

GST_START_TEST (test_json_bad_location)
{
  GstElement *element = gst_element_factory_make ("umgclipjson", NULL);
  GstBus *bus = gst_bus_new ();
  g_autoptr (GstMessage) message = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree gchar *debug = NULL;

  g_object_set (element, "location", "/nonexistent-umgclip-dir/out.jsonl", NULL);
  gst_element_set_bus (element, bus);
  fail_unless_equals_int (gst_element_set_state (element, GST_STATE_PAUSED),
                          GST_STATE_CHANGE_FAILURE);
  message = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (message != NULL);
  gst_message_parse_error (message, &error, &debug);
  fail_unless (strstr (error->message, "/nonexistent-umgclip-dir/out.jsonl") != NULL, "%s",
               error->message);
  gst_element_set_state (element, GST_STATE_NULL);
  gst_bus_set_flushing (bus, TRUE);
  gst_object_unref (element);
  gst_object_unref (bus);
}
GST_END_TEST;

GST_START_TEST (test_json_properties)
{
  GstElement *element = gst_element_factory_make ("umgclipjson", NULL);
  g_autofree gchar *location = NULL;
  gboolean print, post_messages, include_embedding;

  g_object_get (element, "location", &location, "print", &print, "post-messages", &post_messages,
                "include-embedding", &include_embedding, NULL);
  fail_unless (location == NULL);
  fail_unless (!print && !post_messages && !include_embedding);
  g_object_set (element, "location", "a.jsonl", "print", TRUE, "post-messages", TRUE,
                "include-embedding", TRUE, NULL);
  g_object_get (element, "location", &location, "print", &print, "post-messages", &post_messages,
                "include-embedding", &include_embedding, NULL);
  fail_unless_equals_string (location, "a.jsonl");
  fail_unless (print && post_messages && include_embedding);
  gst_object_unref (element);
}
GST_END_TEST;

/* ---- umgclipoverlay ---- */

/* Pushes a copy of input through umgclipoverlay with the given properties; returns the output. */
static GstBuffer *
overlay (const gchar *format, GstBuffer *input, const gchar *first_property, ...)
{
  GstElement *element = gst_element_factory_make ("umgclipoverlay", NULL);
  g_autofree gchar *caps = caps_string (format);
  GstHarness *harness;
  GstBuffer *out;
  va_list args;

  fail_unless (element != NULL, "umgclipoverlay not found: is GST_PLUGIN_PATH set?");
  va_start (args, first_property);
  if (first_property != NULL)
    g_object_set_valist (G_OBJECT (element), first_property, args);
  va_end (args);
  gst_object_ref_sink (element);
  harness = gst_harness_new_with_element (element, "sink", "src");
  gst_object_unref (element);
  gst_harness_set_src_caps_str (harness, caps);
  out = gst_harness_push_and_pull (harness, gst_buffer_copy_deep (input));
  fail_unless (out != NULL);
  gst_harness_teardown (harness);
  return out;
}

/* The 4 bytes of RGBA pixel (x, y). */
static const guint8 *
rgba_at (const GstMapInfo *map, gint x, gint y)
{
  return map->data + (y * WIDTH + x) * 4;
}

static gboolean
rgba_is_grey (const guint8 *pixel)
{
  return pixel[0] == GREY && pixel[1] == GREY && pixel[2] == GREY && pixel[3] == GREY;
}

GST_START_TEST (test_overlay_semantic_masks)
{
  g_autoptr (GstBuffer) input = make_frame ("RGBA", GREY, 0);
  g_autoptr (GstBuffer) half = NULL, opaque = NULL, clear = NULL, off = NULL;
  GstMapInfo half_map, opaque_map, clear_map, off_map;

  add_segmentation (input, FALSE);
  half = overlay ("RGBA", input, "alpha", 0.5, NULL);
  opaque = overlay ("RGBA", input, "alpha", 1.0, NULL);
  clear = overlay ("RGBA", input, "alpha", 0.0, NULL);
  off = overlay ("RGBA", input, "alpha", 1.0, "draw-masks", FALSE, NULL);
  fail_unless (gst_buffer_get_umgclip_segmentation_meta (half) != NULL, "meta must survive");

  fail_unless (gst_buffer_map (half, &half_map, GST_MAP_READ));
  fail_unless (gst_buffer_map (opaque, &opaque_map, GST_MAP_READ));
  fail_unless (gst_buffer_map (clear, &clear_map, GST_MAP_READ));
  fail_unless (gst_buffer_map (off, &off_map, GST_MAP_READ));
  {
    const guint8 *sky = rgba_at (&opaque_map, 0, 0), *car = rgba_at (&opaque_map, 63, 0);
    fail_unless (memcmp (sky, car, 3) != 0, "labels 0 and 1 must differ in colour");
    fail_unless (!(sky[0] == GREY && sky[1] == GREY && sky[2] == GREY));
    for (gint y = 0; y < HEIGHT; y++)
      for (gint x = 0; x < WIDTH; x++)
        {
          /* Each frame pixel maps to mask pixel (x × 8 / 64, y × 6 / 48). */
          const guint label = mask_label (x * MASK_WIDTH / WIDTH, y * MASK_HEIGHT / HEIGHT);
          const guint8 *h = rgba_at (&half_map, x, y), *o = rgba_at (&opaque_map, x, y);
          fail_unless (rgba_is_grey (rgba_at (&clear_map, x, y)), "alpha 0 changed (%d,%d)", x, y);
          fail_unless (rgba_is_grey (rgba_at (&off_map, x, y)), "draw-masks=false changed");
          fail_unless_equals_int (h[3], GREY); /* alpha channel is not painted */
          if (label == GST_UMGCLIP_CLASS_NONE_8)
            {
              fail_unless (rgba_is_grey (h) && rgba_is_grey (o), "unlabelled (%d,%d) changed", x,
                           y);
              continue;
            }
          fail_unless (memcmp (o, label == 0 ? sky : car, 3) == 0, "one colour per label");
          for (guint c = 0; c < 3; c++)
            fail_unless_equals_int (h[c], (GREY * 128 + o[c] * 128 + 128) >> 8);
        }
  }
  gst_buffer_unmap (half, &half_map);
  gst_buffer_unmap (opaque, &opaque_map);
  gst_buffer_unmap (clear, &clear_map);
  gst_buffer_unmap (off, &off_map);
}
GST_END_TEST;

/* Panoptic: the car (a thing, segment 3: frame x 32-63, y 0-23) is filled at alpha and
 * outlined opaquely where the map changes (x 32, next to the sky; y 23, above no segment), not
 * at the frame's edge; the sky (stuff, segments 1 and 2, one label) is tinted at stuff-alpha in
 * one colour, or not at all with stuff-alpha 0; pixels of no segment are untouched. */
GST_START_TEST (test_overlay_panoptic_masks)
{
  g_autoptr (GstBuffer) input = make_frame ("RGBA", GREY, 0);
  g_autoptr (GstBuffer) out = NULL, opaque = NULL, no_stuff = NULL, no_outline = NULL;
  GstMapInfo map, opaque_map, no_stuff_map, no_outline_map;

  add_segmentation (input, TRUE);
  out = overlay ("RGBA", input, "alpha", 0.5, "stuff-alpha", 0.25, "draw-labels", FALSE, NULL);
  opaque = overlay ("RGBA", input, "alpha", 1.0, "stuff-alpha", 1.0, "draw-labels", FALSE, NULL);
  no_stuff = overlay ("RGBA", input, "alpha", 0.5, "stuff-alpha", 0.0, "draw-labels", FALSE, NULL);
  no_outline = overlay ("RGBA", input, "alpha", 0.5, "outline", FALSE, "draw-labels", FALSE, NULL);
  fail_unless (gst_buffer_map (out, &map, GST_MAP_READ));
  fail_unless (gst_buffer_map (opaque, &opaque_map, GST_MAP_READ));
  fail_unless (gst_buffer_map (no_stuff, &no_stuff_map, GST_MAP_READ));
  fail_unless (gst_buffer_map (no_outline, &no_outline_map, GST_MAP_READ));
  {
    const guint8 *sky = rgba_at (&opaque_map, 0, 0), *car = rgba_at (&opaque_map, 40, 10);
    guint edges = 0;
    fail_unless (memcmp (sky, car, 3) != 0, "the sky and the car must differ in colour");
    fail_unless (memcmp (sky, rgba_at (&opaque_map, 0, 47), 3) == 0, "one colour per label");
    for (gint y = 0; y < HEIGHT; y++)
      for (gint x = 0; x < WIDTH; x++)
        {
          const guint segment = mask_segment (x * MASK_WIDTH / WIDTH, y * MASK_HEIGHT / HEIGHT);
          const guint8 *p = rgba_at (&map, x, y), *flat = rgba_at (&no_outline_map, x, y);
          const guint8 *plain = rgba_at (&no_stuff_map, x, y);
          fail_unless_equals_int (p[3], GREY);
          if (segment == 0)
            {
              fail_unless (rgba_is_grey (p) && rgba_is_grey (plain), "(%d,%d) changed", x, y);
              continue;
            }
          if (segment != 3)
            {
              fail_unless (rgba_is_grey (plain), "stuff-alpha 0 tinted (%d,%d)", x, y);
              for (guint c = 0; c < 3; c++)
                fail_unless_equals_int (p[c], (GREY * 192 + sky[c] * 64 + 128) >> 8);
              continue;
            }
          for (guint c = 0; c < 3; c++)
            fail_unless_equals_int (flat[c], (GREY * 128 + car[c] * 128 + 128) >> 8);
          if (x == 32 || y == 23)
            {
              fail_unless (memcmp (p, car, 3) == 0, "outline (%d,%d) not opaque", x, y);
              edges++;
            }
          else
            fail_unless (memcmp (p, flat, 3) == 0, "(%d,%d) inside the car", x, y);
        }
    fail_unless_equals_int (edges, 32 + 24 - 1);
  }
  gst_buffer_unmap (out, &map);
  gst_buffer_unmap (opaque, &opaque_map);
  gst_buffer_unmap (no_stuff, &no_stuff_map);
  gst_buffer_unmap (no_outline, &no_outline_map);
}
GST_END_TEST;

/* The car's ROI as umgclipseg attaches it: tagged, and naming its segment (3). */
static void
add_car_roi (GstBuffer *buffer)
{
  GstVideoRegionOfInterestMeta *roi = add_roi (buffer, "car", 0, 32, 0, 32, 24);
  tag_roi (roi);
  gst_video_region_of_interest_meta_add_param (
      roi, gst_structure_new ("umgclip-segment", "id", G_TYPE_UINT, 3, NULL));
}

static guint
count_white (const GstMapInfo *map)
{
  guint white = 0;
  for (gint y = 0; y < HEIGHT; y++)
    for (gint x = 0; x < WIDTH; x++)
      white += rgba_at (map, x, y)[0] == 255 && rgba_at (map, x, y)[1] == 255;
  return white;
}

/* A thing is drawn once: its ROI, which names its segment, gets a caption but no box while the
 * mask is drawn, and a box when it is not. */
GST_START_TEST (test_overlay_thing_drawn_once)
{
  g_autoptr (GstBuffer) input = make_frame ("RGBA", GREY, 0);
  g_autoptr (GstBuffer) masks = NULL, boxes = NULL;
  GstMapInfo masks_map, boxes_map;

  add_segmentation (input, TRUE);
  add_car_roi (input);
  masks = overlay ("RGBA", input, "alpha", 0.0, "stuff-alpha", 0.0, "outline", FALSE, NULL);
  boxes = overlay ("RGBA", input, "draw-masks", FALSE, NULL);
  fail_unless (gst_buffer_map (masks, &masks_map, GST_MAP_READ));
  fail_unless (gst_buffer_map (boxes, &boxes_map, GST_MAP_READ));
  /* the box's bottom edge (rows 22-23), below the caption, which sits inside the box's top */
  for (gint x = 32; x < 64; x++)
    {
      fail_unless (rgba_is_grey (rgba_at (&masks_map, x, 22)), "a box at (%d,22)", x);
      fail_unless (!rgba_is_grey (rgba_at (&boxes_map, x, 22)), "no box at (%d,22)", x);
    }
  fail_unless (count_white (&masks_map) > 40, "the caption is missing");
  gst_buffer_unmap (masks, &masks_map);
  gst_buffer_unmap (boxes, &boxes_map);
}
GST_END_TEST;

/* min-area in frame pixels: a mask pixel is 64 frame pixels, so each 12-pixel segment covers
 * 768. At 769 the car's mask, box and caption are all left out, and so is the sky; at 768 they
 * are drawn. A bare ROI smaller than min-area is left out too. */
GST_START_TEST (test_overlay_min_area)
{
  g_autoptr (GstBuffer) input = make_frame ("RGBA", GREY, 0);
  g_autoptr (GstBuffer) small_input = make_frame ("RGBA", GREY, 0);
  g_autoptr (GstBuffer) kept = NULL, dropped = NULL, small_kept = NULL, small_dropped = NULL;
  GstMapInfo kept_map, dropped_map, map;

  add_segmentation (input, TRUE);
  add_car_roi (input);
  kept = overlay ("RGBA", input, "min-area", 768, NULL);
  dropped = overlay ("RGBA", input, "min-area", 769, NULL);
  fail_unless (gst_buffer_map (kept, &kept_map, GST_MAP_READ));
  fail_unless (gst_buffer_map (dropped, &dropped_map, GST_MAP_READ));
  fail_unless (!rgba_is_grey (rgba_at (&kept_map, 40, 20)));
  fail_unless (!rgba_is_grey (rgba_at (&kept_map, 5, 5)));
  fail_unless (count_white (&kept_map) > 40);
  for (gint y = 0; y < HEIGHT; y++)
    for (gint x = 0; x < WIDTH; x++)
      fail_unless (rgba_is_grey (rgba_at (&dropped_map, x, y)), "(%d,%d) drawn", x, y);
  gst_buffer_unmap (kept, &kept_map);
  gst_buffer_unmap (dropped, &dropped_map);

  tag_roi (add_roi (small_input, "object", 0, 10, 20, 8, 8));
  small_kept = overlay ("RGBA", small_input, "min-area", 64, NULL);
  small_dropped = overlay ("RGBA", small_input, "min-area", 65, NULL);
  fail_unless (gst_buffer_map (small_kept, &map, GST_MAP_READ));
  fail_unless (!rgba_is_grey (rgba_at (&map, 10, 27)), "the 8x8 box is missing at 64");
  gst_buffer_unmap (small_kept, &map);
  fail_unless (gst_buffer_map (small_dropped, &map, GST_MAP_READ));
  for (gint y = 0; y < HEIGHT; y++)
    for (gint x = 0; x < WIDTH; x++)
      fail_unless (rgba_is_grey (rgba_at (&map, x, y)), "(%d,%d) drawn at 65", x, y);
  gst_buffer_unmap (small_dropped, &map);
}
GST_END_TEST;

/* Three regions with one box: three captions, none over another. Overlapping bands would blend
 * black twice (darker than one band) and cover glyphs (fewer white pixels than three times
 * one caption's). */
GST_START_TEST (test_overlay_captions_do_not_overlap)
{
  g_autoptr (GstBuffer) one_input = make_frame ("RGBA", GREY, 0);
  g_autoptr (GstBuffer) input = make_frame ("RGBA", GREY, 0);
  g_autoptr (GstBuffer) one = NULL, three = NULL;
  const guint8 band_grey = (GREY * 96 + 128) >> 8;
  GstMapInfo one_map, map;
  guint white_one, white_three, banded = 0;

  tag_roi (add_roi (one_input, "object", 0, 10, 20, 30, 20));
  for (gint i = 0; i < 3; i++)
    tag_roi (add_roi (input, "object", i, 10, 20, 30, 20));
  one = overlay ("RGBA", one_input, "draw-boxes", FALSE, NULL);
  three = overlay ("RGBA", input, "draw-boxes", FALSE, NULL);
  fail_unless (gst_buffer_map (one, &one_map, GST_MAP_READ));
  fail_unless (gst_buffer_map (three, &map, GST_MAP_READ));
  white_one = count_white (&one_map);
  white_three = count_white (&map);
  fail_unless (white_one > 40);
  fail_unless_equals_int (white_three, 3 * white_one);
  for (gint y = 0; y < HEIGHT; y++)
    for (gint x = 0; x < WIDTH; x++)
      {
        const guint8 *p = rgba_at (&map, x, y);
        fail_unless (p[0] == GREY || p[0] == band_grey || p[0] == 255, "(%d,%d) is %u", x, y, p[0]);
        banded += p[0] != GREY;
      }
  fail_unless_equals_int (banded, 3 * 49 * 9);
  gst_buffer_unmap (one, &one_map);
  gst_buffer_unmap (three, &map);
}
GST_END_TEST;

/* Exactly the 2-pixel outline of the box changes. */
GST_START_TEST (test_overlay_boxes)
{
  g_autoptr (GstBuffer) input = make_frame ("RGBA", GREY, 0);
  g_autoptr (GstBuffer) out = NULL, off = NULL;
  const gint bx = 10, by = 10, bw = 20, bh = 16;
  GstMapInfo map, off_map;
  guint changed = 0;

  tag_roi (add_roi (input, "object", 0, bx, by, bw, bh));
  out = overlay ("RGBA", input, "draw-labels", FALSE, NULL);
  off = overlay ("RGBA", input, "draw-labels", FALSE, "draw-boxes", FALSE, NULL);
  fail_unless (gst_buffer_get_video_region_of_interest_meta (out) != NULL);
  fail_unless (gst_buffer_map (out, &map, GST_MAP_READ));
  fail_unless (gst_buffer_map (off, &off_map, GST_MAP_READ));
  for (gint y = 0; y < HEIGHT; y++)
    for (gint x = 0; x < WIDTH; x++)
      {
        const gboolean inside = x >= bx && x < bx + bw && y >= by && y < by + bh;
        const gboolean edge
            = inside && (x < bx + 2 || x >= bx + bw - 2 || y < by + 2 || y >= by + bh - 2);
        const guint8 *pixel = rgba_at (&map, x, y);
        fail_unless (rgba_is_grey (rgba_at (&off_map, x, y)));
        fail_unless_equals_int (pixel[3], GREY);
        if (edge)
          {
            fail_unless (!rgba_is_grey (pixel), "edge (%d,%d) not drawn", x, y);
            fail_unless (memcmp (pixel, rgba_at (&map, bx, by), 4) == 0, "one box colour");
            changed++;
          }
        else
          fail_unless (rgba_is_grey (pixel), "(%d,%d) off the outline changed", x, y);
      }
  fail_unless_equals_int (changed, bw * bh - (bw - 4) * (bh - 4));
  gst_buffer_unmap (out, &map);
  gst_buffer_unmap (off, &off_map);
}
GST_END_TEST;

/* A caption of one '-' above a box: a 7×9 band (1 pixel of padding at scale 1) blended with black
 * at 160/256, and the glyph's middle row (row 3) of 5 white pixels. */
GST_START_TEST (test_overlay_caption_pixels)
{
  g_autoptr (GstBuffer) input = make_frame ("RGBA", GREY, 0);
  g_autoptr (GstBuffer) out = NULL;
  const gint bx = 20, by = 30;
  const gint band_x = bx, band_y = by - 9;
  const guint8 band_grey = (GREY * 96 + 128) >> 8;
  GstMapInfo map;

  add_roi (input, "-", 0, bx, by, 16, 10);
  out = overlay ("RGBA", input, "draw-boxes", FALSE, NULL);
  fail_unless (gst_buffer_map (out, &map, GST_MAP_READ));
  for (gint y = 0; y < HEIGHT; y++)
    for (gint x = 0; x < WIDTH; x++)
      {
        const guint8 *pixel = rgba_at (&map, x, y);
        const gboolean in_band = x >= band_x && x < band_x + 7 && y >= band_y && y < band_y + 9;
        const gboolean in_glyph = y == band_y + 1 + 3 && x >= band_x + 1 && x < band_x + 6;
        guint8 expected = in_glyph ? 255 : in_band ? band_grey : GREY;
        for (guint c = 0; c < 3; c++)
          fail_unless_equals_int (pixel[c], expected);
      }
  gst_buffer_unmap (out, &map);
}
GST_END_TEST;

/* The best tag with its confidence is written: more text pixels than for a bare type, and
 * only in the band above the box. */
GST_START_TEST (test_overlay_tag_caption)
{
  g_autoptr (GstBuffer) input = make_frame ("RGBA", GREY, 0);
  g_autoptr (GstBuffer) out = NULL, off = NULL;
  const gint bx = 2, by = 20;
  GstMapInfo map, off_map;
  guint white = 0;
  gint right_most = 0;

  tag_roi (add_roi (input, "object", 0, bx, by, 40, 20));
  out = overlay ("RGBA", input, "draw-boxes", FALSE, NULL);
  off = overlay ("RGBA", input, "draw-boxes", FALSE, "draw-labels", FALSE, NULL);
  fail_unless (gst_buffer_map (out, &map, GST_MAP_READ));
  fail_unless (gst_buffer_map (off, &off_map, GST_MAP_READ));
  for (gint y = 0; y < HEIGHT; y++)
    for (gint x = 0; x < WIDTH; x++)
      {
        const guint8 *pixel = rgba_at (&map, x, y);
        fail_unless (rgba_is_grey (rgba_at (&off_map, x, y)));
        if (y < by - 9 || y >= by || x < bx)
          fail_unless (rgba_is_grey (pixel), "(%d,%d) outside the caption changed", x, y);
        if (pixel[0] == 255)
          {
            white++;
            right_most = MAX (right_most, x);
          }
      }
  /* "dog 0.70": 8 glyphs, 6 pixels apart. */
  fail_unless_equals_int (right_most, bx + 1 + 7 * 6 + 4);
  fail_unless (white > 40, "only %u text pixels", white);
  gst_buffer_unmap (out, &map);
  gst_buffer_unmap (off, &off_map);
}
GST_END_TEST;

/* On I420 and NV12 the mask changes luma and chroma where it lies and nothing else. */
GST_START_TEST (test_overlay_yuv)
{
  const gchar *formats[] = { "I420", "NV12" };
  for (guint f = 0; f < G_N_ELEMENTS (formats); f++)
    {
      g_autoptr (GstBuffer) input = make_frame (formats[f], GREY, 0);
      g_autoptr (GstBuffer) out = NULL;
      GstVideoInfo info;
      GstVideoFrame frame;

      add_segmentation (input, FALSE);
      out = overlay (formats[f], input, "alpha", 1.0, NULL);
      gst_video_info_set_format (&info, gst_video_format_from_string (formats[f]), WIDTH, HEIGHT);
      fail_unless (gst_video_frame_map (&frame, &info, out, GST_MAP_READ));
      for (guint component = 0; component < 3; component++)
        {
          const guint8 *data = GST_VIDEO_FRAME_COMP_DATA (&frame, component);
          const gint stride = GST_VIDEO_FRAME_COMP_STRIDE (&frame, component);
          const gint pixel_stride = GST_VIDEO_FRAME_COMP_PSTRIDE (&frame, component);
          const gint scale = component == 0 ? 1 : 2;
          for (gint y = 0; y < GST_VIDEO_FRAME_COMP_HEIGHT (&frame, component); y++)
            for (gint x = 0; x < GST_VIDEO_FRAME_COMP_WIDTH (&frame, component); x++)
              {
                const guint label
                    = mask_label (x * scale * MASK_WIDTH / WIDTH, y * scale * MASK_HEIGHT / HEIGHT);
                const guint8 value = data[y * stride + x * pixel_stride];
                if (label == GST_UMGCLIP_CLASS_NONE_8)
                  {
                    fail_unless_equals_int (value, GREY);
                  }
                else
                  {
                    fail_unless (value != GREY, "%s component %u (%d,%d) unchanged", formats[f],
                                 component, x, y);
                  }
              }
        }
      gst_video_frame_unmap (&frame);
    }
}
GST_END_TEST;

GST_START_TEST (test_overlay_without_metas_changes_nothing)
{
  const gchar *formats[] = { "RGB", "RGBA", "RGBx", "BGRx", "BGRA", "NV12", "I420" };
  for (guint f = 0; f < G_N_ELEMENTS (formats); f++)
    {
      g_autoptr (GstBuffer) input = make_frame (formats[f], GREY, 0);
      g_autoptr (GstBuffer) out = NULL;
      GstMapInfo in_map, out_map;
      gst_buffer_memset (input, 200, 17, 300);
      out = overlay (formats[f], input, "alpha", 1.0, NULL);
      fail_unless (gst_buffer_map (input, &in_map, GST_MAP_READ));
      fail_unless (gst_buffer_map (out, &out_map, GST_MAP_READ));
      fail_unless_equals_int (in_map.size, out_map.size);
      fail_unless (memcmp (in_map.data, out_map.data, in_map.size) == 0, "%s changed", formats[f]);
      fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 0);
      gst_buffer_unmap (input, &in_map);
      gst_buffer_unmap (out, &out_map);
    }
}
GST_END_TEST;

GST_START_TEST (test_overlay_properties)
{
  GstElement *element = gst_element_factory_make ("umgclipoverlay", NULL);
  gdouble alpha, stuff_alpha;
  gboolean masks, boxes, labels, outline;
  guint min_area;
  g_object_get (element, "alpha", &alpha, "draw-masks", &masks, "draw-boxes", &boxes, "draw-labels",
                &labels, "stuff-alpha", &stuff_alpha, "outline", &outline, "min-area", &min_area,
                NULL);
  fail_unless_equals_float (alpha, 0.3);
  fail_unless_equals_float (stuff_alpha, 0.12);
  fail_unless_equals_int (min_area, 64);
  fail_unless (masks && boxes && labels && outline);
  g_object_set (element, "stuff-alpha", 0.0, "outline", FALSE, "min-area", 0, NULL);
  g_object_get (element, "stuff-alpha", &stuff_alpha, "outline", &outline, "min-area", &min_area,
                NULL);
  fail_unless_equals_float (stuff_alpha, 0.0);
  fail_unless (!outline);
  fail_unless_equals_int (min_area, 0);
  g_object_set (element, "alpha", 0.25, "draw-masks", FALSE, "draw-boxes", FALSE, "draw-labels",
                FALSE, NULL);
  g_object_get (element, "alpha", &alpha, "draw-masks", &masks, "draw-boxes", &boxes, "draw-labels",
                &labels, NULL);
  fail_unless_equals_float (alpha, 0.25);
  fail_unless (!masks && !boxes && !labels);
  gst_object_unref (element);
}
GST_END_TEST;

static Suite *
umgclip_overlay_json_suite (void)
{
  Suite *suite = suite_create ("umgclipoverlay-json");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (suite, tc);
  tcase_add_test (tc, test_json_properties);
  tcase_add_test (tc, test_json_content);
  tcase_add_test (tc, test_json_file);
  tcase_add_test (tc, test_json_invalid_utf8);
  tcase_add_test (tc, test_json_passes_buffers_unchanged);
  tcase_add_test (tc, test_json_bad_location);
  tcase_add_test (tc, test_overlay_properties);
  tcase_add_test (tc, test_overlay_semantic_masks);
  tcase_add_test (tc, test_overlay_panoptic_masks);
  tcase_add_test (tc, test_overlay_thing_drawn_once);
  tcase_add_test (tc, test_overlay_min_area);
  tcase_add_test (tc, test_overlay_captions_do_not_overlap);
  tcase_add_test (tc, test_overlay_boxes);
  tcase_add_test (tc, test_overlay_caption_pixels);
  tcase_add_test (tc, test_overlay_tag_caption);
  tcase_add_test (tc, test_overlay_yuv);
  tcase_add_test (tc, test_overlay_without_metas_changes_nothing);
  return suite;
}

GST_CHECK_MAIN (umgclip_overlay_json);
