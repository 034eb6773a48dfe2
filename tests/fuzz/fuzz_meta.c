/* Fuzzes what the elements read from upstream metadata: region-of-interest metas with their
 * param structures ("detection" from a detector, "umgclip" tags) and the UmgClipAlerts custom
 * meta, as umgclipjson turns them into JSON. The input is a binary head (frame size, then each
 * region's box as four 16-bit values) and structures in GstStructure text form, separated by
 * FUZZ_SPLIT lines: a structure named "alerts" fills the alerts meta, any other is a param of
 * the regions in turn. One harness serves every input, as one element serves a stream: each
 * input is the next frame, with its own caps. */
#include "fuzz_util.h"
#include "umgclipmeta.h"

#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <string.h>

#define MAX_PARTS 8

static guint16
head_value (const uint8_t *head, gsize length, guint index)
{
  return 2 * index + 1 < length ? (guint16) (head[2 * index] | head[2 * index + 1] << 8) : 0;
}

static void
drop_message (const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
}

/* GStreamer's own string parser can raise criticals on odd text (a nested structure with a bad
 * name): that is building the input, not reading it, so they are not fatal here. The parser
 * also leaks a list or array value whose parse fails (208 bytes for `f=(string)<"a", "b`,
 * GStreamer 1.22 and 1.26), so LeakSanitizer ignores what it allocates; what the elements
 * allocate is still checked. */
static GstStructure *
parse_structure (const gchar *text)
{
  GLogLevelFlags fatal = g_log_set_always_fatal (G_LOG_FATAL_MASK);
  GLogFunc handler = g_log_set_default_handler (drop_message, NULL);
  GstStructure *structure;

  FUZZ_LSAN_DISABLE ();
  structure = gst_structure_new_from_string (text);
  FUZZ_LSAN_ENABLE ();
  g_log_set_default_handler (handler, NULL);
  g_log_set_always_fatal (fatal);
  return structure;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const uint8_t *parts[MAX_PARTS];
  gsize lengths[MAX_PARTS];
  GstVideoRegionOfInterestMeta *rois[4];
  guint n_parts, n_rois, width, height;
  static GstHarness *harness;
  GstBuffer *buffer, *out;
  GstEvent *event;
  g_autofree gchar *caps = NULL;

  if (!gst_is_initialized ())
    {
      g_setenv ("GST_REGISTRY_FORK", "no", FALSE);
      gst_init (NULL, NULL);
    }
  n_parts = fuzz_split (data, size, MAX_PARTS, parts, lengths);
  width = 1 + head_value (parts[0], lengths[0], 0) % 64;
  height = 1 + head_value (parts[0], lengths[0], 1) % 64;
  n_rois = head_value (parts[0], lengths[0], 2) % 5;

  buffer = gst_buffer_new_allocate (NULL, width * height * 4, NULL);
  gst_buffer_memset (buffer, 0, 0, width * height * 4);
  GST_BUFFER_PTS (buffer) = 0;
  for (guint i = 0; i < n_rois; i++)
    rois[i] = gst_buffer_add_video_region_of_interest_meta (
        buffer, i % 2 ? "car" : "person", head_value (parts[0], lengths[0], 3 + 4 * i),
        head_value (parts[0], lengths[0], 4 + 4 * i), head_value (parts[0], lengths[0], 5 + 4 * i),
        head_value (parts[0], lengths[0], 6 + 4 * i));
  for (guint p = 1, r = 0; p < n_parts; p++)
    {
      g_autofree gchar *text = fuzz_string (parts[p], lengths[p]);
      GstStructure *structure = parse_structure (text);
      if (structure == NULL)
        continue;
      if (gst_structure_has_name (structure, "alerts"))
        {
          GstCustomMeta *alerts = gst_buffer_add_umgclip_alerts_meta (buffer, "fuzz");
          GstStructure *target = gst_custom_meta_get_structure (alerts);
          for (gint f = 0; f < gst_structure_n_fields (structure); f++)
            {
              const gchar *name = gst_structure_nth_field_name (structure, f);
              gst_structure_set_value (target, name, gst_structure_get_value (structure, name));
            }
          gst_structure_free (structure);
        }
      else if (n_rois > 0)
        gst_video_region_of_interest_meta_add_param (rois[r++ % n_rois], structure);
      else
        gst_structure_free (structure);
    }

  if (harness == NULL)
    harness = gst_harness_new_parse ("umgclipjson print=false post-messages=true");
  caps = g_strdup_printf ("video/x-raw,format=RGBA,width=%u,height=%u,framerate=30/1", width,
                          height);
  gst_harness_set_src_caps_str (harness, caps);
  g_assert (gst_harness_push (harness, buffer) == GST_FLOW_OK);
  out = gst_harness_pull (harness);
  g_assert (out != NULL);
  if (g_getenv ("FUZZ_VERBOSE") != NULL)
    {
      GstMapInfo map;
      gst_buffer_map (out, &map, GST_MAP_READ);
      g_printerr ("%" G_GSIZE_FORMAT " bytes out\n", map.size);
      gst_buffer_unmap (out, &map);
    }
  gst_buffer_unref (out);
  /* the harness keeps every event that reaches its sink (a caps event per input) until pulled */
  while ((event = gst_harness_try_pull_event (harness)) != NULL)
    gst_event_unref (event);
  while ((event = gst_harness_try_pull_upstream_event (harness)) != NULL)
    gst_event_unref (event);
  return 0;
}
