/* The vision tower as a graph: patch embedding, transformer, the CLS embedding, and the dense
 * branch of the last block that gives a text-aligned feature map and region embeddings. */
#pragma once

#include "graph.h"
#include "model.h"

G_BEGIN_DECLS

/* One vision pass. Every field counts in the cache key of planned graphs, so set each one (zero
 * the struct first). */
typedef struct
{
  gint width, height; /* network input, pixels */
  gint batch;         /* images in the pass, >= 1 */
  gboolean dense;     /* also compute the dense maps */
  UmgClipDenseMode dense_mode;
  gint box_capacity; /* region slots per image (0: none); needs dense */
  /* frame_format >= 0: the images are crops of raw video frames in that UmgClipPixelFormat,
   * converted and resized to width × height by PREPROCESS ops; < 0: the images are tensors */
  gint frame_format;
  gint n_frames; /* frames given: 1 (every image a crop of it) or batch (image b of frame b) */
  gint frame_width, frame_height;
  gint frame_strides[3]; /* bytes per row, per plane */
  gfloat frame_kr, frame_kb;
  gboolean frame_full_range;
} UmgVisionSpec;

/* Graph inputs, in order:
 *   tensors: batch pixel inputs [3, height, width];
 *   frames: n_frames × n_planes direct inputs (frame f, plane p at f × n_planes + p, each the
 *     plane's bytes), then the crops [batch, 4] i32 (x, y, width, height in frame pixels);
 *   then, with box_capacity: boxes [batch, box_capacity, 4] as from umg_vision_boxes_to_cells.
 * Outputs: batch embeddings [embed_dim]; with dense, batch dense maps [grid_h, grid_w,
 * embed_dim]; with box_capacity, batch region sets [box_capacity, embed_dim], L2-normalised.
 * Each image is computed exactly as in a pass of batch 1. */
UmgGraph *umg_vision_graph_new (const UmgModel *model, const UmgVisionSpec *spec, GError **error);

/* Boxes (x, y, w, h) in input pixels to (x1, y1, x2, y2) in feature-map cells, shifted by
 * half a cell as aligned RoI-Align does. */
void umg_vision_boxes_to_cells (const UmgModel *model, const gfloat *boxes, guint n_boxes,
                                gfloat *cells);

/* The checkpoint's position embedding resized to a grid_h × grid_w patch grid (PyTorch's
 * bicubic, a = -0.75, align_corners = FALSE); the class position is kept. Returns
 * [1 + grid_h grid_w, width] floats. */
gfloat *umg_vision_position_embedding (const UmgModel *model, gint grid_h, gint grid_w);

G_END_DECLS
