/* State cycles and a long run of umgclipenc ! umgclipseg ! umgcliptag in one schedule mode, for
 * tests/test_schedule.py to run under valgrind: prints how many cycles and frames came through
 * and how many threads of ours (named umgclip-*) are left once the pipelines are gone.
 * usage: test_state_cycles MODEL SCHEDULE CYCLES FRAMES */
#include <gst/gst.h>
#include <stdlib.h>

static GstPadProbeReturn
count_buffer (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  (*(guint *) user_data)++;
  return GST_PAD_PROBE_OK;
}

/* Runs description to EOS cycles times (PLAYING, then NULL); returns the cycles that ended
 * with frames buffers at the sink. */
static guint
run_cycles (const gchar *description, guint cycles, guint frames)
{
  g_autoptr (GError) error = NULL;
  GstElement *pipeline = gst_parse_launch (description, &error);
  GstElement *sink;
  GstPad *pad;
  GstBus *bus;
  guint good = 0, count = 0;

  if (pipeline == NULL)
    {
      g_printerr ("%s: %s\n", description, error->message);
      return 0;
    }
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  pad = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, count_buffer, &count, NULL);
  bus = gst_element_get_bus (pipeline);
  for (guint cycle = 0; cycle < cycles; cycle++)
    {
      GstMessage *message;
      count = 0;
      gst_element_set_state (pipeline, GST_STATE_PLAYING);
      message
          = gst_bus_timed_pop_filtered (bus, 600 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
      if (message != NULL && GST_MESSAGE_TYPE (message) == GST_MESSAGE_ERROR)
        {
          g_autoptr (GError) failure = NULL;
          gst_message_parse_error (message, &failure, NULL);
          g_printerr ("cycle %u: %s\n", cycle, failure->message);
        }
      else if (message != NULL && count == frames)
        good++;
      else
        g_printerr ("cycle %u: %u of %u frames\n", cycle, count, frames);
      g_clear_pointer (&message, gst_message_unref);
      gst_element_set_state (pipeline, GST_STATE_NULL);
    }
  gst_object_unref (bus);
  gst_object_unref (pad);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  return good;
}

/* Threads of this process whose name starts with umgclip- (the models' workers, the elements'
 * output threads). */
static guint
count_our_threads (void)
{
  g_autoptr (GDir) dir = g_dir_open ("/proc/self/task", 0, NULL);
  const gchar *task;
  guint found = 0;

  while (dir != NULL && (task = g_dir_read_name (dir)) != NULL)
    {
      g_autofree gchar *path = g_build_filename ("/proc/self/task", task, "comm", NULL);
      g_autofree gchar *name = NULL;
      if (g_file_get_contents (path, &name, NULL, NULL) && g_str_has_prefix (name, "umgclip-"))
        found++;
    }
  return found;
}

int
main (int argc, char **argv)
{
  const gchar *model, *schedule;
  guint cycles, frames, good_cycles, good_runs;
  g_autofree gchar *chain = NULL, *short_run = NULL, *long_run = NULL;

  gst_init (&argc, &argv);
  if (argc != 5)
    {
      g_printerr ("usage: test_state_cycles MODEL SCHEDULE CYCLES FRAMES\n");
      return 2;
    }
  model = argv[1];
  schedule = argv[2];
  cycles = atoi (argv[3]);
  frames = atoi (argv[4]);
  chain = g_strdup_printf (
      "umgclipenc model=%s device=cpu schedule=%s ! umgclipseg model=%s device=cpu "
      "schedule=%s mode=panoptic labels=sky,grass,car stuff-labels=sky,grass threshold=0 ! "
      "umgcliptag model=%s device=cpu schedule=%s inference-region=segments labels=red,green "
      "threshold=0",
      model, schedule, model, schedule, model, schedule);
  short_run = g_strdup_printf ("videotestsrc num-buffers=4 ! video/x-raw,format=NV12,width=64,"
                               "height=48 ! %s ! fakesink name=sink sync=false",
                               chain);
  long_run = g_strdup_printf ("videotestsrc num-buffers=%u ! video/x-raw,format=I420,width=64,"
                              "height=48 ! %s ! fakesink name=sink sync=false",
                              frames, chain);
  good_cycles = run_cycles (short_run, cycles, 4);
  good_runs = run_cycles (long_run, 1, frames);
  g_print ("cycles %u/%u\n", good_cycles, cycles);
  g_print ("frames %u/%u\n", good_runs == 1 ? frames : 0, frames);
  g_print ("threads left %u\n", count_our_threads ());
  gst_deinit ();
  return good_cycles == cycles && good_runs == 1 ? 0 : 1;
}
