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

void
umgclip_mask_pool (const gfloat *dense, gint grid_w, gint grid_h, gint dim, const guint8 *map,
                   gboolean wide, gint mask_w, gint mask_h, const guint *values, guint n_values,
                   gfloat *out)
{
  const gsize n_cells = (gsize) grid_w * grid_h;
  const guint n_codes = wide ? 65536 : 256;
  g_autofree gint *region_of_value = g_new (gint, n_codes);
  g_autofree gfloat *weights = g_new0 (gfloat, (gsize) MAX (n_values, 1) * n_cells);

  for (guint v = 0; v < n_codes; v++)
    region_of_value[v] = -1;
  for (guint r = 0; r < n_values; r++)
    if (values[r] < n_codes)
      region_of_value[values[r]] = (gint) r;

  for (gint my = 0; my < mask_h; my++)
    {
      gfloat cy = CLAMP ((my + 0.5f) * grid_h / mask_h - 0.5f, 0.0f, (gfloat) grid_h - 1.0f);
      gint y0 = (gint) cy, y1 = MIN (y0 + 1, grid_h - 1);
      gfloat wy = cy - y0;
      for (gint mx = 0; mx < mask_w; mx++)
        {
          gsize pixel = (gsize) my * mask_w + mx;
          guint value = wide ? map[2 * pixel] | (guint) map[2 * pixel + 1] << 8 : map[pixel];
          gint r = region_of_value[value];
          gfloat cx, wx, *w;
          gint x0, x1;
          if (r < 0)
            continue;
          cx = CLAMP ((mx + 0.5f) * grid_w / mask_w - 0.5f, 0.0f, (gfloat) grid_w - 1.0f);
          x0 = (gint) cx;
          x1 = MIN (x0 + 1, grid_w - 1);
          wx = cx - x0;
          w = weights + (gsize) r * n_cells;
          w[y0 * grid_w + x0] += (1 - wy) * (1 - wx);
          w[y0 * grid_w + x1] += (1 - wy) * wx;
          w[y1 * grid_w + x0] += wy * (1 - wx);
          w[y1 * grid_w + x1] += wy * wx;
        }
    }

  for (guint r = 0; r < n_values; r++)
    {
      const gfloat *w = weights + (gsize) r * n_cells;
      gfloat *embedding = out + (gsize) r * dim;
      memset (embedding, 0, dim * sizeof (gfloat));
      for (gsize cell = 0; cell < n_cells; cell++)
        if (w[cell] != 0)
          for (gint c = 0; c < dim; c++)
            embedding[c] += w[cell] * dense[cell * dim + c];
      umgclip_l2_normalize (embedding, dim);
    }
}

void
umgclip_crop_for_box (UmgClipPixelFormat format, gint frame_width, gint frame_height, gint x,
                      gint y, gint w, gint h, UmgClipCrop *out)
{
  const gboolean subsampled = format == UMGCLIP_FORMAT_NV12 || format == UMGCLIP_FORMAT_I420;
  gint x0 = CLAMP (x, 0, frame_width - 1);
  gint y0 = CLAMP (y, 0, frame_height - 1);
  gint x1 = CLAMP ((gint64) x + w, x0 + 1, frame_width);
  gint y1 = CLAMP ((gint64) y + h, y0 + 1, frame_height);

  /* chroma of 4:2:0 is read from the crop's corner on: keep the corner on a chroma sample */
  if (subsampled)
    {
      x0 &= ~1;
      y0 &= ~1;
    }
  *out = (UmgClipCrop){ x0, y0, x1 - x0, y1 - y0 };
}
