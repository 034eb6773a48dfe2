/* Bilinear resampling shared by video-frame conversion (frame.c) and mask upsampling
 * (segment.c): PyTorch's F.interpolate(mode="bilinear", align_corners=False), no antialias. */
#pragma once

#include "umgclip.h"

#include <glib.h>

G_BEGIN_DECLS

/* Where one output sample reads along one axis: value = (1 - frac) · src[lo] + frac · src[hi]. */
typedef struct
{
  gint lo, hi;
  gfloat frac;
} UmgBilinearTap;

/* Fills taps[out_size] for a resize from in_size to out_size samples: half-pixel centres,
 * coordinates left of the first centre clamp to it, hi clamps to the last sample. */
void umg_bilinear_taps (gint in_size, gint out_size, UmgBilinearTap *taps);

/* Planes of a frame in format (a UmgClipPixelFormat) of the given size and row strides, and
 * the bytes each spans (to the end of its last pixel); returns the number of planes, 0 for an
 * unknown format or a stride shorter than its row. */
guint umg_frame_plane_bytes (gint format, gint width, gint height, const gint strides[3],
                             gsize bytes[3]);

/* The YUV → RGB arithmetic of a frame, shared by the CPU conversion and the shader:
 * luma gain and offset, chroma gain, then the Cr→R, Cb→G, Cr→G and Cb→B coefficients. */
typedef struct
{
  gfloat luma_gain, luma_offset, chroma_gain;
  gfloat r_cr, g_cb, g_cr, b_cb;
} UmgYuvCoefficients;

void umg_yuv_coefficients (gfloat kr, gfloat kb, gboolean full_range,
                           UmgYuvCoefficients *coefficients);

/* crop clamped to a width × height frame: origin inside the frame, at least one pixel, not past
 * its edges; NULL is the whole frame. The preprocess shader applies the same rule. */
void umg_crop_clamp (const UmgClipCrop *crop, gint width, gint height, UmgClipCrop *out);

/* umgclip_frame_to_tensor of the crop (clamped as above) of frame, NULL: the whole frame. Chroma
 * of 4:2:0 formats is read at (crop x + x) / 2, so crops that start on odd pixels see the chroma
 * of the frame's own grid. */
gboolean umg_frame_crop_to_tensor (const UmgClipFrame *frame, const UmgClipCrop *crop, gint out_w,
                                   gint out_h, const gfloat mean[3], const gfloat std[3],
                                   gfloat *out, GError **error);

/* The checks umgclip_frame_to_tensor makes of a frame's size, planes and strides. */
gboolean umg_frame_check (const UmgClipFrame *frame, GError **error);

G_END_DECLS
