/* Bilinear resampling shared by video-frame conversion (frame.c) and mask upsampling
 * (segment.c): PyTorch's F.interpolate(mode="bilinear", align_corners=False), no antialias. */
#pragma once

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

G_END_DECLS
