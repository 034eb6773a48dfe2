/* The vision tower as a graph: patch embedding, transformer, the CLS embedding, and the dense
 * branch of the last block that gives a text-aligned feature map and region embeddings. */
#pragma once

#include "graph.h"
#include "model.h"

G_BEGIN_DECLS

typedef struct
{
  gint width, height; /* input pixels */
  gboolean dense;     /* also compute the dense map */
  UmgClipDenseMode dense_mode;
  gint box_capacity; /* region slots (0: none); needs dense */
  /* frame_format >= 0: input 0 is a raw video frame in that UmgClipPixelFormat, converted
   * and resized to width × height by a PREPROCESS op; < 0: input 0 is the tensor itself */
  gint frame_format;
  gint frame_width, frame_height;
  gint frame_strides[3], frame_offsets[3]; /* bytes, per plane, in the packed frame */
  gfloat frame_kr, frame_kb;
  gboolean frame_full_range;
  gsize frame_bytes;
} UmgVisionSpec;

/* Graph inputs: 0 pixels [3, height, width] (or the frame's bytes); 1 boxes [box_capacity, 4] as
 * from umg_vision_boxes_to_cells. Outputs: 0 embedding [embed_dim]; 1 dense [grid_h, grid_w,
 * embed_dim]; 2 regions [box_capacity, embed_dim], L2-normalised. */
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
