/* CLIP's image preprocessing on the host, for still images given to the command-line tool:
 * shorter side to the model size, centre crop, normalise. Video frames are prepared by the
 * backend instead (umgclip_encode_frames: a shader on Vulkan, frame.c on the CPU). */
#include "context.h"

#include <math.h>

static gdouble
bicubic_kernel (gdouble x)
{
  /* a = -0.5, as PIL's bicubic filter */
  const gdouble a = -0.5;
  x = fabs (x);
  if (x < 1)
    return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2)
    return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

/* Weights of the source samples for every output sample of a 1-D resize from in_size to
 * out_size, shifted by offset output samples (for the crop). Antialiased when shrinking. */
typedef struct
{
  gint first, count;
  gdouble *weights;
} Taps;

static Taps *
make_taps (gint in_size, gdouble scale, gint out_size, gint offset, gint *max_count)
{
  Taps *taps = g_new0 (Taps, out_size);
  gdouble stretch = MAX (scale, 1.0);
  gdouble support = 2.0 * stretch;
  *max_count = 0;
  for (gint i = 0; i < out_size; i++)
    {
      gdouble center = (i + offset + 0.5) * scale;
      gint first = MAX ((gint) floor (center - support), 0);
      gint last = MIN ((gint) ceil (center + support), in_size - 1);
      gdouble total = 0;
      taps[i].first = first;
      taps[i].count = last - first + 1;
      taps[i].weights = g_new (gdouble, taps[i].count);
      for (gint j = 0; j < taps[i].count; j++)
        {
          taps[i].weights[j] = bicubic_kernel ((first + j + 0.5 - center) / stretch);
          total += taps[i].weights[j];
        }
      for (gint j = 0; j < taps[i].count; j++)
        taps[i].weights[j] /= total != 0 ? total : 1;
      *max_count = MAX (*max_count, taps[i].count);
    }
  return taps;
}

static void
free_taps (Taps *taps, gint n)
{
  for (gint i = 0; i < n; i++)
    g_free (taps[i].weights);
  g_free (taps);
}

void
umgclip_preprocess_rgb (UmgClipContext *ctx, const guint8 *rgb, gint width, gint height,
                        gint stride, gint size, gfloat *out)
{
  const UmgVision *vision = &ctx->model->vision;
  gint shorter = MIN (width, height), max_count;
  gdouble scale;
  gint resized_w, resized_h, crop_x, crop_y;
  Taps *taps_x, *taps_y;
  g_autofree gdouble *rows = NULL;

  if (size <= 0)
    size = vision->image_size;
  scale = (gdouble) shorter / size;
  resized_w = width == shorter ? size : (gint) (width / scale);
  resized_h = height == shorter ? size : (gint) (height / scale);
  crop_x = (gint) round ((resized_w - size) / 2.0);
  crop_y = (gint) round ((resized_h - size) / 2.0);
  taps_x = make_taps (width, (gdouble) width / resized_w, size, crop_x, &max_count);
  taps_y = make_taps (height, (gdouble) height / resized_h, size, crop_y, &max_count);

  /* horizontal pass over every source row, then vertical */
  rows = g_new (gdouble, (gsize) height * size * 3);
  for (gint y = 0; y < height; y++)
    for (gint x = 0; x < size; x++)
      for (gint c = 0; c < 3; c++)
        {
          gdouble value = 0;
          for (gint j = 0; j < taps_x[x].count; j++)
            value += taps_x[x].weights[j] * rgb[(gsize) y * stride + (taps_x[x].first + j) * 3 + c];
          rows[((gsize) y * size + x) * 3 + c] = value;
        }
  for (gint y = 0; y < size; y++)
    for (gint x = 0; x < size; x++)
      for (gint c = 0; c < 3; c++)
        {
          gdouble value = 0;
          for (gint j = 0; j < taps_y[y].count; j++)
            value
                += taps_y[y].weights[j] * rows[((gsize) (taps_y[y].first + j) * size + x) * 3 + c];
          value = CLAMP (round (value), 0, 255) / 255.0;
          out[((gsize) c * size + y) * size + x] = (value - vision->mean[c]) / vision->std[c];
        }
  free_taps (taps_x, size);
  free_taps (taps_y, size);
}
