#version 450
/* Layer normalisation, one workgroup per row: mean, then the variance around it (two passes
 * keep precision on rows with a large mean), then (x - mean) / sqrt(var + eps) * gamma + beta. */
layout (constant_id = 0) const uint WORKGROUP_SIZE = 256;
layout (local_size_x_id = 0) in;

layout (std430, binding = 0) readonly buffer BufferX { float x[]; };
layout (std430, binding = 1) readonly buffer BufferGamma { float gamma[]; };
layout (std430, binding = 2) readonly buffer BufferBeta { float beta[]; };
layout (std430, binding = 3) writeonly buffer BufferDst { float dst[]; };

layout (push_constant) uniform Params
{
  uint rows, cols, src_stride, dst_stride;
  uint offset_x, offset_gamma, offset_beta, offset_dst;
  float eps;
} p;

shared float partial[WORKGROUP_SIZE];

float
workgroup_sum (float value)
{
  const uint tid = gl_LocalInvocationID.x;
  partial[tid] = value;
  barrier ();
  for (uint half_size = WORKGROUP_SIZE / 2; half_size > 0; half_size /= 2)
    {
      if (tid < half_size)
        partial[tid] += partial[tid + half_size];
      barrier ();
    }
  float total = partial[0];
  barrier ();
  return total;
}

void
main ()
{
  /* rows beyond the dispatch limit wrap into gl_WorkGroupID.y */
  const uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  const uint tid = gl_LocalInvocationID.x;
  if (row >= p.rows)
    return;
  const uint src = p.offset_x + row * p.src_stride;
  const uint out_base = p.offset_dst + row * p.dst_stride;

  float sum = 0.0;
  for (uint c = tid; c < p.cols; c += WORKGROUP_SIZE)
    sum += x[src + c];
  const float mean = workgroup_sum (sum) / float (p.cols);

  float squares = 0.0;
  for (uint c = tid; c < p.cols; c += WORKGROUP_SIZE)
    {
      float d = x[src + c] - mean;
      squares += d * d;
    }
  const float inv_std = 1.0 / sqrt (workgroup_sum (squares) / float (p.cols) + p.eps);

  for (uint c = tid; c < p.cols; c += WORKGROUP_SIZE)
    dst[out_base + c] = (x[src + c] - mean) * inv_std * gamma[p.offset_gamma + c]
        + beta[p.offset_beta + c];
}
