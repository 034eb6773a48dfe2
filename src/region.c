/* Region pooling on dense maps: aligned RoI-Align, as torchvision's roi_align (aligned=True)
 * followed by a mean over the bins. */
#include "region.h"

#include "umgclip.h"

#include <string.h>

/* Adds weight × the bilinear sample at (y, x) of map to sum, with torchvision's roi_align
 * rules for samples on and beyond the border. */
static void
add_sample (const gfloat *map, gint grid_h, gint grid_w, gint cols, gfloat y, gfloat x,
            gdouble *sum)
{
  gint y_low, x_low, y_high, x_high;
  gfloat ly, lx, weights[4];
  const gfloat *corners[4];

  if (y < -1.0f || y > grid_h || x < -1.0f || x > grid_w)
    return;
  y = MAX (y, 0.0f);
  x = MAX (x, 0.0f);
  y_low = (gint) y;
  x_low = (gint) x;
  if (y_low >= grid_h - 1)
    {
      y_low = y_high = grid_h - 1;
      y = (gfloat) y_low;
    }
  else
    y_high = y_low + 1;
  if (x_low >= grid_w - 1)
    {
      x_low = x_high = grid_w - 1;
      x = (gfloat) x_low;
    }
  else
    x_high = x_low + 1;
  ly = y - y_low;
  lx = x - x_low;
  weights[0] = (1.0f - ly) * (1.0f - lx);
  weights[1] = (1.0f - ly) * lx;
  weights[2] = ly * (1.0f - lx);
  weights[3] = ly * lx;
  corners[0] = map + ((gsize) y_low * grid_w + x_low) * cols;
  corners[1] = map + ((gsize) y_low * grid_w + x_high) * cols;
  corners[2] = map + ((gsize) y_high * grid_w + x_low) * cols;
  corners[3] = map + ((gsize) y_high * grid_w + x_high) * cols;
  for (gint c = 0; c < cols; c++)
    sum[c] += weights[0] * corners[0][c] + weights[1] * corners[1][c] + weights[2] * corners[2][c]
              + weights[3] * corners[3][c];
}

void
umg_roi_align (const gfloat *map, gint grid_h, gint grid_w, gint cols, const gfloat *boxes,
               gint n_boxes, gint output_size, gint sampling, gfloat *dst)
{
  g_autofree gdouble *sum = g_new (gdouble, cols);
  /* Every bin has sampling² samples, so the mean of bin means is the mean of all samples;
   * samples beyond the map count as zeros. */
  gdouble n_samples = (gdouble) output_size * output_size * sampling * sampling;

  for (gint box = 0; box < n_boxes; box++)
    {
      const gfloat *corners = boxes + (gsize) box * 4;
      gfloat x1 = corners[0], y1 = corners[1], x2 = corners[2], y2 = corners[3];
      gfloat bin_w = (x2 - x1) / output_size, bin_h = (y2 - y1) / output_size;
      gfloat *out = dst + (gsize) box * cols;

      memset (sum, 0, cols * sizeof (gdouble));
      for (gint ph = 0; ph < output_size; ph++)
        for (gint iy = 0; iy < sampling; iy++)
          {
            gfloat y = y1 + ph * bin_h + (iy + 0.5f) * bin_h / sampling;
            for (gint pw = 0; pw < output_size; pw++)
              for (gint ix = 0; ix < sampling; ix++)
                {
                  gfloat x = x1 + pw * bin_w + (ix + 0.5f) * bin_w / sampling;
                  add_sample (map, grid_h, grid_w, cols, y, x, sum);
                }
          }
      for (gint c = 0; c < cols; c++)
        out[c] = (gfloat) (sum[c] / n_samples);
    }
}

void
umgclip_roi_align (const gfloat *dense, gint grid_w, gint grid_h, gint dim, gfloat scale_x,
                   gfloat scale_y, const gfloat *boxes, guint n_boxes, gfloat *out)
{
  g_autofree gfloat *cells = g_new (gfloat, 4 * (gsize) MAX (n_boxes, 1));
  for (guint i = 0; i < n_boxes; i++)
    {
      const gfloat *box = boxes + 4 * (gsize) i;
      cells[4 * i] = box[0] * scale_x - 0.5f;
      cells[4 * i + 1] = box[1] * scale_y - 0.5f;
      cells[4 * i + 2] = (box[0] + box[2]) * scale_x - 0.5f;
      cells[4 * i + 3] = (box[1] + box[3]) * scale_y - 0.5f;
    }
  umg_roi_align (dense, grid_h, grid_w, dim, cells, n_boxes, UMGCLIP_ROI_OUTPUT_SIZE,
                 UMGCLIP_ROI_SAMPLING, out);
  for (guint i = 0; i < n_boxes; i++)
    umgclip_l2_normalize (out + (gsize) i * dim, dim);
}
