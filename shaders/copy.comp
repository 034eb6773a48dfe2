#version 450
/* Strided row copy: dst row r (dst_stride apart) = src row r (src_stride apart). */
layout (constant_id = 0) const uint WORKGROUP_SIZE = 256;
layout (local_size_x_id = 0) in;

layout (std430, binding = 0) readonly buffer BufferSrc { float src[]; };
layout (std430, binding = 1) writeonly buffer BufferDst { float dst[]; };

layout (push_constant) uniform Params
{
  uint rows, cols, src_stride, dst_stride;
  uint offset_src, offset_dst;
} p;

void
main ()
{
  const uint index = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x)
      * WORKGROUP_SIZE + gl_LocalInvocationID.x;
  if (index >= p.rows * p.cols)
    return;
  const uint row = index / p.cols, col = index % p.cols;
  dst[p.offset_dst + row * p.dst_stride + col] = src[p.offset_src + row * p.src_stride + col];
}
