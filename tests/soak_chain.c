/* A long run of the full chain (enc ! seg ! tag ! overlay ! json) for the soak, the memory-growth
 * test and the memory bench: labels changed every --labels-every frames, caps renegotiated
 * mid-stream every --caps-every frames, a PLAYING -> READY -> PLAYING cycle every --cycle-every
 * frames. Prints the resident memory every --rss-every frames and, at the end, frames seen, JSON
 * lines written, warnings and errors, and the growth and slope of memory after --warmup frames:
 * of the heap in use (what a leak grows) and of resident memory (which also holds what the
 * allocator keeps). Exits 1 when a frame or a JSON line is missing, an error or warning was
 * posted, or the heap's growth passes --max-growth-kib or its slope --max-slope-kib, or resident
 * memory's growth passes --max-rss-growth-kib.
 * usage: soak_chain --model DIR --json FILE [--frames N] [--device cpu] ... */
#include <gst/gst.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct
{
  GstElement *capsfilter, *seg, *tag;
  guint frames, labels_every, caps_every, rss_every;
  guint seen; /* frames at the sink, over every cycle */
  guint n_samples;
  guint64 sample_frame[1024];
  guint64 sample_rss_kib[1024];
  guint64 sample_heap_kib[1024];
} Soak;

/* Frame sizes and formats the caps cycle through: odd sizes and both YUV layouts included. */
static const gchar *const caps_cycle[]
    = { "video/x-raw,format=I420,width=64,height=48", "video/x-raw,format=NV12,width=80,height=60",
        "video/x-raw,format=RGBx,width=63,height=47", "video/x-raw,format=I420,width=65,height=49",
        "video/x-raw,format=BGRA,width=96,height=72" };
static const gchar *const label_cycle[]
    = { "red square,green grass,blue sky,white wall", "a ball,black road,blue sky",
        "person,car,tree,building,sky,road,grass" };

/* Anonymous resident memory (heap, stacks, arenas) in KiB, from /proc/self/status: what a leak
 * grows; file pages (the plugin, mapped weights) come and go with the page cache. */
static guint64
anonymous_kib (void)
{
  g_autofree gchar *status = NULL;
  const gchar *line;
  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL)
      || (line = strstr (status, "RssAnon:")) == NULL)
    return 0;
  return g_ascii_strtoull (line + strlen ("RssAnon:"), NULL, 10);
}

/* Bytes of the heap in use, in KiB: allocated and not freed, in every arena and in mmapped
 * chunks. Unlike resident memory it does not move when the allocator keeps freed pages or
 * fragments its heap (steps of 1-18 MiB at state cycles, docs/RELIABILITY.md), so a leak is all
 * that grows it. Where mallinfo2 is missing (not glibc 2.33+), anonymous resident memory. */
static guint64
heap_in_use_kib (void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  struct mallinfo2 info = mallinfo2 ();
  return (info.uordblks + info.hblkhd) / 1024;
#else
  return anonymous_kib ();
#endif
}

static guint64
resident_kib (void)
{
  guint64 size = 0, resident = 0;
  FILE *statm = fopen ("/proc/self/statm", "r");
  if (statm == NULL)
    return 0;
  if (fscanf (statm, "%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT, &size, &resident) != 2)
    resident = 0;
  fclose (statm);
  return resident * (guint64) sysconf (_SC_PAGESIZE) / 1024;
}

/* Upstream of the analysis, in the streaming thread: the changes take effect on this frame. */
static GstPadProbeReturn
before_analysis (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  Soak *soak = user_data;
  guint n = soak->seen;
  if (n > 0 && n % soak->labels_every == 0)
    {
      const gchar *labels = label_cycle[(n / soak->labels_every) % G_N_ELEMENTS (label_cycle)];
      g_object_set (soak->seg, "labels", labels, NULL);
      g_object_set (soak->tag, "labels", labels, NULL);
    }
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
at_sink (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  Soak *soak = user_data;
  guint n = ++soak->seen;
  if (n % soak->caps_every == 0 && n < soak->frames)
    {
      /* videotestsrc renegotiates on its next frame */
      GstCaps *caps
          = gst_caps_from_string (caps_cycle[(n / soak->caps_every) % G_N_ELEMENTS (caps_cycle)]);
      g_object_set (soak->capsfilter, "caps", caps, NULL);
      gst_caps_unref (caps);
    }
  if (n % soak->rss_every == 0 && soak->n_samples < G_N_ELEMENTS (soak->sample_frame))
    {
      guint64 rss = resident_kib (), heap = heap_in_use_kib ();
      soak->sample_frame[soak->n_samples] = n;
      soak->sample_rss_kib[soak->n_samples] = rss;
      soak->sample_heap_kib[soak->n_samples++] = heap;
      g_print ("frames %u rss_kib %" G_GUINT64_FORMAT " anon_kib %" G_GUINT64_FORMAT
               " heap_kib %" G_GUINT64_FORMAT "\n",
               n, rss, anonymous_kib (), heap);
    }
  return GST_PAD_PROBE_OK;
}

/* Least-squares slope of samples (KiB) per 1,000 frames, from the sample at warmup on (before
 * it: model load, the first plans of each frame size, allocator arenas). */
static gdouble
memory_slope (const Soak *soak, const guint64 *kib, guint warmup)
{
  gdouble sx = 0, sy = 0, sxx = 0, sxy = 0;
  guint n = 0;
  for (guint i = 0; i < soak->n_samples; i++)
    {
      gdouble x = soak->sample_frame[i] / 1000.0, y = kib[i];
      if (soak->sample_frame[i] < warmup)
        continue;
      sx += x, sy += y, sxx += x * x, sxy += x * y;
      n++;
    }
  if (n < 2)
    return 0;
  return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

/* The highest sample of the second half of the run after warmup against the highest of the
 * first half. Peaks, because memory swings with each frame size and state cycle; a leak raises
 * every later peak. */
static gint64
memory_growth (const Soak *soak, const guint64 *kib, guint warmup)
{
  guint64 from = 0, to = 0, mid = ((guint64) warmup + soak->frames) / 2;
  for (guint i = 0; i < soak->n_samples; i++)
    {
      if (soak->sample_frame[i] < (guint64) warmup)
        continue;
      if (soak->sample_frame[i] <= mid)
        from = MAX (from, kib[i]);
      else
        to = MAX (to, kib[i]);
    }
  return (gint64) to - (gint64) from;
}

static guint
count_lines (const gchar *path)
{
  g_autofree gchar *contents = NULL;
  guint lines = 0;
  if (!g_file_get_contents (path, &contents, NULL, NULL))
    return 0;
  for (const gchar *c = contents; *c; c++)
    lines += *c == '\n';
  return lines;
}

int
main (int argc, char **argv)
{
  g_autofree gchar *model = NULL, *json = NULL, *device = NULL, *description = NULL;
  gint frames = 10000, labels_every = 100, caps_every = 1000, cycle_every = 2500;
  gint rss_every = 1000, warmup = 1000, max_growth_kib = -1, max_slope_kib = -1;
  gint max_rss_growth_kib = -1;
  GOptionEntry entries[] = {
    { "model", 0, 0, G_OPTION_ARG_FILENAME, &model, "model directory", "DIR" },
    { "json", 0, 0, G_OPTION_ARG_FILENAME, &json, "JSON lines file to write", "FILE" },
    { "device", 0, 0, G_OPTION_ARG_STRING, &device, "device (default cpu)", "DEVICE" },
    { "frames", 0, 0, G_OPTION_ARG_INT, &frames, "frames in all", "N" },
    { "labels-every", 0, 0, G_OPTION_ARG_INT, &labels_every, "frames between label changes", "N" },
    { "caps-every", 0, 0, G_OPTION_ARG_INT, &caps_every, "frames between caps changes", "N" },
    { "cycle-every", 0, 0, G_OPTION_ARG_INT, &cycle_every, "frames between state cycles", "N" },
    { "rss-every", 0, 0, G_OPTION_ARG_INT, &rss_every, "frames between memory samples", "N" },
    { "warmup", 0, 0, G_OPTION_ARG_INT, &warmup, "frame of the growth bound's first sample", "N" },
    { "max-growth-kib", 0, 0, G_OPTION_ARG_INT, &max_growth_kib, "bound of the heap's growth",
      "KIB" },
    { "max-slope-kib", 0, 0, G_OPTION_ARG_INT, &max_slope_kib,
      "bound of the heap's slope per 1000 frames", "KIB" },
    { "max-rss-growth-kib", 0, 0, G_OPTION_ARG_INT, &max_rss_growth_kib,
      "bound of resident memory's growth", "KIB" },
    { NULL },
  };
  g_autoptr (GOptionContext) options = g_option_context_new ("- soak the umgclip chain");
  g_autoptr (GError) error = NULL;
  Soak soak = { 0 };
  GstElement *pipeline, *sink, *source;
  GstPad *pad;
  GstBus *bus;
  guint warnings = 0, errors = 0, cycles = 0, lines = 0;
  gint64 heap_growth, rss_growth;
  gdouble heap_slope, rss_slope;
  gboolean ok;

  g_option_context_add_main_entries (options, entries, NULL);
  g_option_context_add_group (options, gst_init_get_option_group ());
  if (!g_option_context_parse (options, &argc, &argv, &error) || model == NULL || json == NULL
      || frames <= 0 || labels_every <= 0 || caps_every <= 0 || cycle_every <= 0 || rss_every <= 0)
    {
      g_printerr ("soak_chain: %s\n", error ? error->message : "--model and --json are required");
      return 2;
    }
  soak.frames = frames;
  soak.labels_every = labels_every;
  soak.caps_every = caps_every;
  soak.rss_every = rss_every;

  description = g_strdup_printf (
      "videotestsrc name=source pattern=ball ! capsfilter name=caps caps=%s "
      "! umgclipenc model=%s device=%s "
      "! umgclipseg name=seg mode=panoptic threshold=0 labels=\"%s\" model=%s device=%s "
      "! umgcliptag name=tag inference-region=segments threshold=0 labels=\"%s\" model=%s "
      "device=%s ! umgclipoverlay ! umgclipjson location=%s ! fakesink name=sink",
      caps_cycle[0], model, device ? device : "cpu", label_cycle[0], model, device ? device : "cpu",
      label_cycle[0], model, device ? device : "cpu", json);
  pipeline = gst_parse_launch (description, &error);
  if (pipeline == NULL)
    {
      g_printerr ("soak_chain: %s\n", error->message);
      return 2;
    }
  soak.capsfilter = gst_bin_get_by_name (GST_BIN (pipeline), "caps");
  soak.seg = gst_bin_get_by_name (GST_BIN (pipeline), "seg");
  soak.tag = gst_bin_get_by_name (GST_BIN (pipeline), "tag");
  source = gst_bin_get_by_name (GST_BIN (pipeline), "source");
  pad = gst_element_get_static_pad (soak.capsfilter, "src");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, before_analysis, &soak, NULL);
  gst_object_unref (pad);
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  pad = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, at_sink, &soak, NULL);
  gst_object_unref (pad);
  bus = gst_element_get_bus (pipeline);

  /* One stretch of cycle_every frames (fewer for the last) per state cycle. */
  while (soak.seen < soak.frames && errors == 0)
    {
      guint stretch = MIN ((guint) cycle_every, soak.frames - soak.seen);
      gboolean done = FALSE;
      g_object_set (source, "num-buffers", (gint) stretch, NULL);
      gst_element_set_state (pipeline, GST_STATE_PLAYING);
      while (!done)
        {
          GstMessage *message = gst_bus_timed_pop_filtered (
              bus, 300 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_WARNING);
          g_autoptr (GError) failure = NULL;
          g_autofree gchar *debug = NULL;
          if (message == NULL)
            {
              g_printerr ("cycle %u: no end of stream within 300 s\n", cycles);
              errors++;
              break;
            }
          switch (GST_MESSAGE_TYPE (message))
            {
            case GST_MESSAGE_ERROR:
              gst_message_parse_error (message, &failure, &debug);
              g_printerr ("error from %s: %s\n", GST_OBJECT_NAME (message->src), failure->message);
              errors++;
              done = TRUE;
              break;
            case GST_MESSAGE_WARNING:
              gst_message_parse_warning (message, &failure, &debug);
              g_printerr ("warning from %s: %s\n", GST_OBJECT_NAME (message->src),
                          failure->message);
              warnings++;
              break;
            default:
              done = TRUE;
              break;
            }
          gst_message_unref (message);
        }
      /* the cycle: elements stop (models and labels released) and start again */
      gst_element_set_state (pipeline, GST_STATE_READY);
      /* umgclipjson starts its file afresh on every start */
      lines += count_lines (json);
      cycles++;
    }
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (sink);
  gst_object_unref (source);
  gst_object_unref (soak.capsfilter);
  gst_object_unref (soak.seg);
  gst_object_unref (soak.tag);
  gst_object_unref (pipeline);

  heap_growth = memory_growth (&soak, soak.sample_heap_kib, warmup);
  heap_slope = memory_slope (&soak, soak.sample_heap_kib, warmup);
  rss_growth = memory_growth (&soak, soak.sample_rss_kib, warmup);
  rss_slope = memory_slope (&soak, soak.sample_rss_kib, warmup);
  g_print ("frames %u of %u, json lines %u, state cycles %u, warnings %u, errors %u\n", soak.seen,
           soak.frames, lines, cycles, warnings, errors);
  g_print ("after frame %d (growth: peak of the second half - peak of the first):\n", warmup);
  g_print ("heap growth %" G_GINT64_FORMAT " KiB; slope %.1f KiB per 1000 frames\n", heap_growth,
           heap_slope);
  g_print ("rss growth %" G_GINT64_FORMAT " KiB; slope %.1f KiB per 1000 frames\n", rss_growth,
           rss_slope);
  ok = soak.seen == soak.frames && lines == soak.frames && warnings == 0 && errors == 0;
  if (max_growth_kib >= 0 && heap_growth > max_growth_kib)
    {
      g_printerr ("the heap in use grew by more than %d KiB\n", max_growth_kib);
      ok = FALSE;
    }
  if (max_slope_kib >= 0 && heap_slope > max_slope_kib)
    {
      g_printerr ("the heap in use grew by more than %d KiB per 1000 frames\n", max_slope_kib);
      ok = FALSE;
    }
  if (max_rss_growth_kib >= 0 && rss_growth > max_rss_growth_kib)
    {
      g_printerr ("resident memory grew by more than %d KiB\n", max_rss_growth_kib);
      ok = FALSE;
    }
  gst_deinit ();
  return ok ? 0 : 1;
}
