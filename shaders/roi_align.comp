#version 450
/* Aligned RoI-Align on a channel-last map [grid_h, grid_w, cols]: per box and channel, the
 * mean over output_size² bins of the mean of sampling² bilinear samples, sampled the way
 * torchvision's roi_align does (samples beyond one cell outside the map count as zero).
 * Boxes (x1, y1, x2, y2) are in cells, already shifted by -0.5. One invocation per output. */
layout (constant_id = 0) const uint WORKGROUP_SIZE = 256;
layout (local_size_x_id = 0) in;

layout (std430, binding = 0) readonly buffer BufferMap { float map[]; };
layout (std430, binding = 1) readonly buffer BufferBoxes { float boxes[]; };
layout (std430, binding = 2) writeonly buffer BufferDst { float dst[]; };

layout (push_constant) uniform Params
{
  uint grid_h, grid_w, cols, n_boxes, output_size, sampling;
  uint offset_map, offset_boxes, offset_dst;
} p;

float
map_at (uint y, uint x, uint col)
{
  return map[p.offset_map + (y * p.grid_w + x) * p.cols + col];
}

float
bilinear (float y, float x, uint col)
{
  const float height = float (p.grid_h), width = float (p.grid_w);
  if (y < -1.0 || y > height || x < -1.0 || x > width)
    return 0.0;
  y = max (y, 0.0);
  x = max (x, 0.0);
  uint y_low = uint (y), x_low = uint (x);
  uint y_high, x_high;
  if (y_low >= p.grid_h - 1)
    {
      y_low = y_high = p.grid_h - 1;
      y = float (y_low);
    }
  else
    y_high = y_low + 1;
  if (x_low >= p.grid_w - 1)
    {
      x_low = x_high = p.grid_w - 1;
      x = float (x_low);
    }
  else
    x_high = x_low + 1;
  const float ly = y - float (y_low), lx = x - float (x_low);
  const float hy = 1.0 - ly, hx = 1.0 - lx;
  return hy * hx * map_at (y_low, x_low, col) + hy * lx * map_at (y_low, x_high, col)
      + ly * hx * map_at (y_high, x_low, col) + ly * lx * map_at (y_high, x_high, col);
}

void
main ()
{
  const uint index = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x)
      * WORKGROUP_SIZE + gl_LocalInvocationID.x;
  if (index >= p.n_boxes * p.cols)
    return;
  const uint box = index / p.cols, col = index % p.cols;
  const uint box_base = p.offset_boxes + box * 4;
  const float x1 = boxes[box_base], y1 = boxes[box_base + 1];
  const float x2 = boxes[box_base + 2], y2 = boxes[box_base + 3];
  const float bin_w = (x2 - x1) / float (p.output_size);
  const float bin_h = (y2 - y1) / float (p.output_size);
  const float step_w = bin_w / float (p.sampling), step_h = bin_h / float (p.sampling);

  float sum = 0.0;
  for (uint by = 0; by < p.output_size; by++)
    for (uint sy = 0; sy < p.sampling; sy++)
      {
        const float y = y1 + float (by) * bin_h + (float (sy) + 0.5) * step_h;
        for (uint bx = 0; bx < p.output_size; bx++)
          for (uint sx = 0; sx < p.sampling; sx++)
            sum += bilinear (y, x1 + float (bx) * bin_w + (float (sx) + 0.5) * step_w, col);
      }
  const uint n_samples = p.output_size * p.output_size * p.sampling * p.sampling;
  dst[p.offset_dst + index] = sum / float (n_samples);
}
