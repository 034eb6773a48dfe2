#version 450
/* Row softmax in place, one workgroup per row of batch × rows × cols: optional additive bias
 * [rows, cols] shared by the batch, optional causal mask (columns after the row's index). */
layout (constant_id = 0) const uint WORKGROUP_SIZE = 256;
layout (constant_id = 1) const bool HAS_BIAS = false;
layout (constant_id = 2) const bool CAUSAL = false;
layout (local_size_x_id = 0) in;

layout (std430, binding = 0) buffer BufferX { float x[]; };
layout (std430, binding = 1) readonly buffer BufferBias { float bias[]; };

layout (push_constant) uniform Params
{
  uint total_rows, rows, cols;
  uint offset_x, offset_bias;
} p;

shared float partial[WORKGROUP_SIZE];

float
workgroup_reduce (float value, bool take_max)
{
  const uint tid = gl_LocalInvocationID.x;
  partial[tid] = value;
  barrier ();
  for (uint half_size = WORKGROUP_SIZE / 2; half_size > 0; half_size /= 2)
    {
      if (tid < half_size)
        partial[tid] = take_max ? max (partial[tid], partial[tid + half_size])
            : partial[tid] + partial[tid + half_size];
      barrier ();
    }
  float total = partial[0];
  barrier ();
  return total;
}

void
main ()
{
  const uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  const uint tid = gl_LocalInvocationID.x;
  if (row >= p.total_rows)
    return;
  const uint row_in_matrix = row % p.rows;
  const uint base = p.offset_x + row * p.cols;
  const uint bias_base = p.offset_bias + row_in_matrix * p.cols;
  /* masked columns take no part and end as exact zeros */
  const uint live_cols = CAUSAL ? min (p.cols, row_in_matrix + 1) : p.cols;

  float largest = -3.402823466e38;
  for (uint c = tid; c < live_cols; c += WORKGROUP_SIZE)
    {
      float value = x[base + c];
      if (HAS_BIAS)
        value += bias[bias_base + c];
      largest = max (largest, value);
    }
  largest = workgroup_reduce (largest, true);

  float sum = 0.0;
  for (uint c = tid; c < live_cols; c += WORKGROUP_SIZE)
    {
      float value = x[base + c];
      if (HAS_BIAS)
        value += bias[bias_base + c];
      value = exp (value - largest);
      x[base + c] = value;
      sum += value;
    }
  const float inv_sum = 1.0 / workgroup_reduce (sum, false);

  for (uint c = tid; c < p.cols; c += WORKGROUP_SIZE)
    x[base + c] = c < live_cols ? x[base + c] * inv_sum : 0.0;
}
