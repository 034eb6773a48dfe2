/* Aligned RoI-Align on a dense feature map: the region pooling shared by the CPU backend's op
 * and the public umgclip_roi_align. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* For each box (x1, y1, x2, y2 in map cells, already shifted by -0.5 as aligned RoI-Align
 * does) the mean of output_size² bins of sampling² bilinear samples of map [grid_h, grid_w,
 * cols], with torchvision's border rules; dst [n_boxes, cols]. */
void umg_roi_align (const gfloat *map, gint grid_h, gint grid_w, gint cols, const gfloat *boxes,
                    gint n_boxes, gint output_size, gint sampling, gfloat *dst);

G_END_DECLS
