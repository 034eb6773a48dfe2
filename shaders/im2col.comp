#version 450
/* Image [channels, height, width] to non-overlapping patches
 * [grid_h * grid_w, channels * patch * patch], columns ordered (channel, ky, kx) like a conv
 * weight, so patch embedding becomes one matmul. One invocation per output element. */
layout (constant_id = 0) const uint WORKGROUP_SIZE = 256;
layout (local_size_x_id = 0) in;

layout (std430, binding = 0) readonly buffer BufferImage { float image[]; };
layout (std430, binding = 1) writeonly buffer BufferDst { float dst[]; };

layout (push_constant) uniform Params
{
  uint channels, height, width, patch_size, grid_h, grid_w;
  uint offset_image, offset_dst;
} p;

void
main ()
{
  const uint index = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x)
      * WORKGROUP_SIZE + gl_LocalInvocationID.x;
  const uint patch_area = p.patch_size * p.patch_size;
  const uint row_size = p.channels * patch_area;
  if (index >= p.grid_h * p.grid_w * row_size)
    return;
  const uint patch_index = index / row_size, column = index % row_size;
  const uint channel = column / patch_area;
  const uint ky = (column % patch_area) / p.patch_size, kx = column % p.patch_size;
  const uint y = (patch_index / p.grid_w) * p.patch_size + ky;
  const uint x = (patch_index % p.grid_w) * p.patch_size + kx;
  dst[p.offset_dst + index] = image[p.offset_image + (channel * p.height + y) * p.width + x];
}
