/* Throughput of batched vision passes against one pass per image, on the CPU backend: n RGB
 * frames of size × size (several streams at once) through umgclip_encode_frames as one batch,
 * against the same frames one umgclip_encode_frame call each. Prints one JSON line.
 *
 * usage: bench_batch MODEL [--batch 4] [--size 224] [--iterations 5] [--dense] */
#include "umgclip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
compare_doubles (const void *a, const void *b)
{
  gdouble x = *(const gdouble *) a, y = *(const gdouble *) b;
  return x < y ? -1 : x > y;
}

typedef struct
{
  UmgClipContext *ctx;
  UmgClipFrame *frames;
  UmgClipImageRequest *requests;
  guint batch;
  gint size;
} Pass;

static gboolean
batched (const Pass *pass, GError **error)
{
  return umgclip_encode_frames (pass->ctx, pass->frames, pass->batch, NULL, pass->batch, pass->size,
                                pass->size, pass->requests, error);
}

static gboolean
one_by_one (const Pass *pass, GError **error)
{
  for (guint i = 0; i < pass->batch; i++)
    if (!umgclip_encode_frame (pass->ctx, &pass->frames[i], pass->size, pass->size,
                               &pass->requests[i], error))
      return FALSE;
  return TRUE;
}

/* Median milliseconds of iterations calls after one warm-up call (which also plans). */
static gboolean
time_ms (gboolean (*run) (const Pass *, GError **), const Pass *pass, gint iterations,
         gdouble *median, GError **error)
{
  g_autofree gdouble *times = g_new (gdouble, iterations);
  if (!run (pass, error))
    return FALSE;
  for (gint i = 0; i < iterations; i++)
    {
      gint64 start = g_get_monotonic_time ();
      if (!run (pass, error))
        return FALSE;
      times[i] = (g_get_monotonic_time () - start) / 1000.0;
    }
  qsort (times, iterations, sizeof (gdouble), compare_doubles);
  *median = times[iterations / 2];
  return TRUE;
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  gint batch = 4, size = 224, iterations = 5;
  gboolean dense = FALSE;
  gdouble batched_ms, single_ms;
  Pass pass = { 0 };

  for (gint i = 2; i < argc; i++)
    if (strcmp (argv[i], "--dense") == 0)
      dense = TRUE;
    else if (i + 1 < argc && strcmp (argv[i], "--batch") == 0)
      batch = atoi (argv[++i]);
    else if (i + 1 < argc && strcmp (argv[i], "--size") == 0)
      size = atoi (argv[++i]);
    else if (i + 1 < argc && strcmp (argv[i], "--iterations") == 0)
      iterations = atoi (argv[++i]);
  if (argc < 2 || batch < 1 || batch > UMGCLIP_MAX_BATCH || size < 1 || iterations < 1)
    {
      fprintf (stderr, "usage: %s MODEL [--batch N] [--size N] [--iterations N] [--dense]\n",
               argv[0]);
      return 2;
    }
  pass.ctx = umgclip_context_new (argv[1], UMGCLIP_DEVICE_CPU, -1, &error);
  if (pass.ctx == NULL)
    {
      fprintf (stderr, "%s\n", error->message);
      return 1;
    }
  const UmgClipInfo *info = umgclip_context_get_info (pass.ctx);
  gsize cells = (gsize) (size / info->patch_size) * (size / info->patch_size);
  GRand *rand = g_rand_new_with_seed (1);
  pass.batch = (guint) batch;
  pass.size = size;
  pass.frames = g_new0 (UmgClipFrame, batch);
  pass.requests = g_new0 (UmgClipImageRequest, batch);
  for (gint i = 0; i < batch; i++)
    {
      guint8 *pixels = g_new (guint8, 3 * (gsize) size * size);
      for (gsize p = 0; p < 3 * (gsize) size * size; p++)
        pixels[p] = (guint8) g_rand_int_range (rand, 0, 256);
      pass.frames[i] = (UmgClipFrame){ .format = UMGCLIP_FORMAT_RGB,
                                       .width = size,
                                       .height = size,
                                       .planes = { pixels },
                                       .strides = { 3 * size } };
      pass.requests[i].embedding = g_new (gfloat, info->embed_dim);
      if (dense)
        pass.requests[i].dense = g_new (gfloat, cells * info->embed_dim);
    }
  g_rand_free (rand);
  if (!time_ms (batched, &pass, iterations, &batched_ms, &error)
      || !time_ms (one_by_one, &pass, iterations, &single_ms, &error))
    {
      fprintf (stderr, "%s\n", error->message);
      return 1;
    }
  printf ("{\"backend\": \"%s\", \"batch\": %d, \"size\": %d, \"dense\": %s, \"batched_ms\": %.3f, "
          "\"one_by_one_ms\": %.3f, \"batched_images_per_s\": %.3f, "
          "\"one_by_one_images_per_s\": %.3f}\n",
          info->backend, batch, size, dense ? "true" : "false", batched_ms, single_ms,
          batch * 1000.0 / batched_ms, batch * 1000.0 / single_ms);
  for (gint i = 0; i < batch; i++)
    {
      g_free ((gpointer) pass.frames[i].planes[0]);
      g_free (pass.requests[i].embedding);
      g_free (pass.requests[i].dense);
    }
  g_free (pass.frames);
  g_free (pass.requests);
  umgclip_context_free (pass.ctx);
  return 0;
}
