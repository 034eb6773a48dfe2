/* Video frames to network input: colour conversion from the frame's own layout, bilinear
 * resize and normalisation in one pass, so no intermediate RGB frame is ever allocated. */
#include "frame.h"

#include "context.h"

#include <math.h>
#include <string.h>

void
umg_bilinear_taps (gint in_size, gint out_size, UmgBilinearTap *taps)
{
  /* float, not double, arithmetic: PyTorch computes the source coordinate in the tensor's
   * accumulate type, which is float for float tensors, and we want its exact taps. */
  const gfloat scale = (gfloat) in_size / (gfloat) out_size;
  for (gint i = 0; i < out_size; i++)
    {
      gfloat source = MAX (scale * (i + 0.5f) - 0.5f, 0.0f);
      gint lo = MIN ((gint) source, in_size - 1);
      taps[i].lo = lo;
      taps[i].hi = lo < in_size - 1 ? lo + 1 : lo;
      taps[i].frac = MIN (source - lo, 1.0f);
    }
}

static const struct
{
  const gchar *name;
  UmgClipPixelFormat format;
} format_names[] = {
  { "RGB", UMGCLIP_FORMAT_RGB },   { "RGBA", UMGCLIP_FORMAT_RGBA }, { "RGBx", UMGCLIP_FORMAT_RGBX },
  { "BGRx", UMGCLIP_FORMAT_BGRX }, { "BGRA", UMGCLIP_FORMAT_BGRA }, { "NV12", UMGCLIP_FORMAT_NV12 },
  { "I420", UMGCLIP_FORMAT_I420 },
};

gboolean
umgclip_pixel_format_parse (const gchar *name, UmgClipPixelFormat *format, GError **error)
{
  for (guint i = 0; name != NULL && i < G_N_ELEMENTS (format_names); i++)
    if (strcmp (name, format_names[i].name) == 0)
      {
        *format = format_names[i].format;
        return TRUE;
      }
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
               "unsupported pixel format \"%s\" (expected RGB, RGBA, RGBx, BGRx, BGRA, NV12 or "
               "I420)",
               name ? name : "(null)");
  return FALSE;
}

const gchar *
umgclip_pixel_format_name (UmgClipPixelFormat format)
{
  for (guint i = 0; i < G_N_ELEMENTS (format_names); i++)
    if (format_names[i].format == format)
      return format_names[i].name;
  return NULL;
}

void
umg_yuv_coefficients (gfloat kr, gfloat kb, gboolean full_range, UmgYuvCoefficients *c)
{
  gfloat kg;
  if (kr <= 0.0f || kb <= 0.0f || kr + kb >= 1.0f)
    {
      /* BT.601 */
      kr = 0.299f;
      kb = 0.114f;
    }
  kg = 1.0f - kr - kb;
  /* limited range puts luma on 16..235 (219 steps) and chroma on 16..240 (224 steps) */
  c->luma_gain = full_range ? 1.0f : 255.0f / 219.0f;
  c->luma_offset = full_range ? 0.0f : 16.0f;
  c->chroma_gain = full_range ? 1.0f : 255.0f / 224.0f;
  c->r_cr = 2.0f * (1.0f - kr);
  c->g_cb = 2.0f * kb * (1.0f - kb) / kg;
  c->g_cr = 2.0f * kr * (1.0f - kr) / kg;
  c->b_cb = 2.0f * (1.0f - kb);
}

typedef struct
{
  const UmgClipFrame *frame;
  UmgYuvCoefficients yuv;
} FrameView;

/* One source pixel as R, G, B on 0..255. Chroma of 4:2:0 formats is taken from the sample
 * covering the pixel (no chroma interpolation), as most converters do. */
static inline void
read_pixel (const FrameView *view, gint x, gint y, gfloat rgb[3])
{
  const UmgClipFrame *frame = view->frame;
  const UmgYuvCoefficients *c = &view->yuv;
  const guint8 *row = frame->planes[0] + (gsize) y * frame->strides[0];
  gint luma, cb, cr;

  switch (frame->format)
    {
    case UMGCLIP_FORMAT_RGB:
      rgb[0] = row[3 * x], rgb[1] = row[3 * x + 1], rgb[2] = row[3 * x + 2];
      return;
    case UMGCLIP_FORMAT_RGBA:
    case UMGCLIP_FORMAT_RGBX:
      rgb[0] = row[4 * x], rgb[1] = row[4 * x + 1], rgb[2] = row[4 * x + 2];
      return;
    case UMGCLIP_FORMAT_BGRX:
    case UMGCLIP_FORMAT_BGRA:
      rgb[0] = row[4 * x + 2], rgb[1] = row[4 * x + 1], rgb[2] = row[4 * x];
      return;
    case UMGCLIP_FORMAT_NV12:
      {
        const guint8 *chroma = frame->planes[1] + (gsize) (y / 2) * frame->strides[1];
        luma = row[x], cb = chroma[2 * (x / 2)], cr = chroma[2 * (x / 2) + 1];
        break;
      }
    case UMGCLIP_FORMAT_I420:
    default:
      luma = row[x];
      cb = frame->planes[1][(gsize) (y / 2) * frame->strides[1] + x / 2];
      cr = frame->planes[2][(gsize) (y / 2) * frame->strides[2] + x / 2];
      break;
    }

  gfloat scaled_luma = c->luma_gain * (luma - c->luma_offset);
  gfloat pb = c->chroma_gain * (cb - 128), pr = c->chroma_gain * (cr - 128);
  rgb[0] = CLAMP (scaled_luma + c->r_cr * pr, 0.0f, 255.0f);
  rgb[1] = CLAMP (scaled_luma - c->g_cb * pb - c->g_cr * pr, 0.0f, 255.0f);
  rgb[2] = CLAMP (scaled_luma + c->b_cb * pb, 0.0f, 255.0f);
}

static gboolean
check_plane (const guint8 *const planes[3], const gint strides[3], guint plane, gint min_stride,
             GError **error)
{
  if (planes[plane] == NULL)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "frame plane %u is NULL", plane);
      return FALSE;
    }
  if (strides[plane] < min_stride)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "frame plane %u stride %d is less than its row of %d bytes", plane,
                   strides[plane], min_stride);
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_frame (UmgClipPixelFormat format, const guint8 *const planes[3], const gint strides[3],
             gint width, gint height, GError **error)
{
  const gint chroma_width = (width + 1) / 2;

  if (width <= 0 || height <= 0)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "frame size %d×%d is not positive",
                   width, height);
      return FALSE;
    }
  if (planes == NULL || strides == NULL)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "frame planes or strides are NULL");
      return FALSE;
    }
  /* keeps every byte offset well inside gsize and every index inside gint */
  if (width > G_MAXINT / 8)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "frame width %d is too large",
                   width);
      return FALSE;
    }
  switch (format)
    {
    case UMGCLIP_FORMAT_RGB:
      return check_plane (planes, strides, 0, 3 * width, error);
    case UMGCLIP_FORMAT_RGBA:
    case UMGCLIP_FORMAT_RGBX:
    case UMGCLIP_FORMAT_BGRX:
    case UMGCLIP_FORMAT_BGRA:
      return check_plane (planes, strides, 0, 4 * width, error);
    case UMGCLIP_FORMAT_NV12:
      return check_plane (planes, strides, 0, width, error)
             && check_plane (planes, strides, 1, 2 * chroma_width, error);
    case UMGCLIP_FORMAT_I420:
      return check_plane (planes, strides, 0, width, error)
             && check_plane (planes, strides, 1, chroma_width, error)
             && check_plane (planes, strides, 2, chroma_width, error);
    }
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "unknown pixel format %d",
               (gint) format);
  return FALSE;
}

void
umg_crop_clamp (const UmgClipCrop *crop, gint width, gint height, UmgClipCrop *out)
{
  if (crop == NULL)
    {
      *out = (UmgClipCrop){ 0, 0, width, height };
      return;
    }
  out->x = CLAMP (crop->x, 0, width - 1);
  out->y = CLAMP (crop->y, 0, height - 1);
  out->width = CLAMP (crop->width, 1, width - out->x);
  out->height = CLAMP (crop->height, 1, height - out->y);
}

gboolean
umg_frame_crop_to_tensor (const UmgClipFrame *frame, const UmgClipCrop *crop, gint out_w,
                          gint out_h, const gfloat mean[3], const gfloat std[3], gfloat *out,
                          GError **error)
{
  FrameView view = { .frame = frame };
  const gint width = frame->width, height = frame->height;
  gfloat gain[3], offset[3];
  UmgClipCrop rect;

  if (!check_frame (frame->format, frame->planes, frame->strides, width, height, error))
    return FALSE;
  umg_yuv_coefficients (frame->kr, frame->kb, frame->full_range, &view.yuv);
  if (out_w <= 0 || out_h <= 0 || out_w > G_MAXINT / out_h)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "output size %d×%d is not positive or too large", out_w, out_h);
      return FALSE;
    }
  for (gint c = 0; c < 3; c++)
    {
      if (!(std[c] != 0.0f) || !isfinite (std[c]) || !isfinite (mean[c]))
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                       "channel %d: mean %g / std %g cannot normalise", c, mean[c], std[c]);
          return FALSE;
        }
      /* (value / 255 - mean) / std as one multiply-add */
      gain[c] = 1.0f / (255.0f * std[c]);
      offset[c] = -mean[c] / std[c];
    }
  /* the shader clamps the same way, so a crop can never read outside the frame */
  umg_crop_clamp (crop, width, height, &rect);

  g_autofree UmgBilinearTap *taps_x = g_new (UmgBilinearTap, out_w);
  g_autofree UmgBilinearTap *taps_y = g_new (UmgBilinearTap, out_h);
  umg_bilinear_taps (rect.width, out_w, taps_x);
  umg_bilinear_taps (rect.height, out_h, taps_y);

  const gsize plane_size = (gsize) out_w * out_h;
  for (gint oy = 0; oy < out_h; oy++)
    {
      const UmgBilinearTap ty = taps_y[oy];
      for (gint ox = 0; ox < out_w; ox++)
        {
          const UmgBilinearTap tx = taps_x[ox];
          gfloat top_left[3], top_right[3], bottom_left[3], bottom_right[3];
          read_pixel (&view, rect.x + tx.lo, rect.y + ty.lo, top_left);
          read_pixel (&view, rect.x + tx.hi, rect.y + ty.lo, top_right);
          read_pixel (&view, rect.x + tx.lo, rect.y + ty.hi, bottom_left);
          read_pixel (&view, rect.x + tx.hi, rect.y + ty.hi, bottom_right);
          for (gint c = 0; c < 3; c++)
            {
              gfloat top = (1.0f - tx.frac) * top_left[c] + tx.frac * top_right[c];
              gfloat bottom = (1.0f - tx.frac) * bottom_left[c] + tx.frac * bottom_right[c];
              gfloat value = (1.0f - ty.frac) * top + ty.frac * bottom;
              out[c * plane_size + (gsize) oy * out_w + ox] = value * gain[c] + offset[c];
            }
        }
    }
  return TRUE;
}

gboolean
umgclip_frame_to_tensor (const UmgClipFrame *frame, gint out_w, gint out_h, const gfloat mean[3],
                         const gfloat std[3], gfloat *out, GError **error)
{
  return umg_frame_crop_to_tensor (frame, NULL, out_w, out_h, mean, std, out, error);
}

gboolean
umg_frame_check (const UmgClipFrame *frame, GError **error)
{
  return check_frame (frame->format, frame->planes, frame->strides, frame->width, frame->height,
                      error);
}

guint
umg_frame_plane_bytes (gint format, gint width, gint height, const gint strides[3], gsize bytes[3])
{
  const gsize chroma_rows = (height + 1) / 2, chroma_width = (width + 1) / 2;
  gsize row_bytes[3] = { 0, 0, 0 };
  gsize rows[3] = { height, chroma_rows, chroma_rows };
  guint n_planes;

  switch (format)
    {
    case UMGCLIP_FORMAT_RGB:
      row_bytes[0] = 3 * (gsize) width;
      n_planes = 1;
      break;
    case UMGCLIP_FORMAT_RGBA:
    case UMGCLIP_FORMAT_RGBX:
    case UMGCLIP_FORMAT_BGRX:
    case UMGCLIP_FORMAT_BGRA:
      row_bytes[0] = 4 * (gsize) width;
      n_planes = 1;
      break;
    case UMGCLIP_FORMAT_NV12:
      row_bytes[0] = width;
      row_bytes[1] = 2 * chroma_width;
      n_planes = 2;
      break;
    case UMGCLIP_FORMAT_I420:
      row_bytes[0] = width;
      row_bytes[1] = row_bytes[2] = chroma_width;
      n_planes = 3;
      break;
    default:
      return 0;
    }
  for (guint i = 0; i < n_planes; i++)
    if (strides[i] < 0 || (gsize) strides[i] < row_bytes[i])
      return 0;
  /* the last row ends after its pixels, not after a whole stride */
  for (guint i = 0; i < 3; i++)
    bytes[i] = i < n_planes ? (rows[i] - 1) * strides[i] + row_bytes[i] : 0;
  return n_planes;
}

void
umgclip_get_pixel_stats (UmgClipContext *ctx, gfloat mean[3], gfloat std[3])
{
  for (gint c = 0; c < 3; c++)
    {
      mean[c] = ctx->model->vision.mean[c];
      std[c] = ctx->model->vision.std[c];
    }
}
