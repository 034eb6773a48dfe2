#version 450
/* Row L2 normalisation, one workgroup per row: x / max(‖x‖, 1e-12); in place allowed. */
layout (constant_id = 0) const uint WORKGROUP_SIZE = 256;
layout (local_size_x_id = 0) in;

layout (std430, binding = 0) readonly buffer BufferX { float x[]; };
layout (std430, binding = 1) writeonly buffer BufferDst { float dst[]; };

layout (push_constant) uniform Params
{
  uint rows, cols;
  uint offset_x, offset_dst;
} p;

shared float partial[WORKGROUP_SIZE];

void
main ()
{
  const uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  const uint tid = gl_LocalInvocationID.x;
  if (row >= p.rows)
    return;
  const uint src = p.offset_x + row * p.cols;
  const uint out_base = p.offset_dst + row * p.cols;

  float squares = 0.0;
  for (uint c = tid; c < p.cols; c += WORKGROUP_SIZE)
    squares += x[src + c] * x[src + c];
  partial[tid] = squares;
  barrier ();
  for (uint half_size = WORKGROUP_SIZE / 2; half_size > 0; half_size /= 2)
    {
      if (tid < half_size)
        partial[tid] += partial[tid + half_size];
      barrier ();
    }
  const float scale = 1.0 / max (sqrt (partial[0]), 1e-12);

  for (uint c = tid; c < p.cols; c += WORKGROUP_SIZE)
    dst[out_base + c] = x[src + c] * scale;
}
