#version 450
/* Broadcast add dst[i] = a[i] + b[i % n_b]; in place when dst is a. */
layout (constant_id = 0) const uint WORKGROUP_SIZE = 256;
layout (local_size_x_id = 0) in;

layout (std430, binding = 0) readonly buffer BufferA { float a[]; };
layout (std430, binding = 1) readonly buffer BufferB { float b[]; };
layout (std430, binding = 2) writeonly buffer BufferDst { float dst[]; };

layout (push_constant) uniform Params
{
  uint n, n_b;
  uint offset_a, offset_b, offset_dst;
} p;

void
main ()
{
  const uint index = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x)
      * WORKGROUP_SIZE + gl_LocalInvocationID.x;
  if (index >= p.n)
    return;
  dst[p.offset_dst + index] = a[p.offset_a + index] + b[p.offset_b + index % p.n_b];
}
