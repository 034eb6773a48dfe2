#version 450
/* Tiled GEMM, fp32 accumulate: C[b] = act(alpha * A[b] · op(B[b]) + bias), or C[b] += that.
 * A workgroup computes a TILE_M × TILE_N block of C through shared-memory tiles of A and B;
 * each invocation owns THREAD_M × THREAD_N outputs spread over the block with a stride, so
 * neighbouring invocations touch neighbouring columns of C. Batch in gl_WorkGroupID.z.
 * Variants: B_F16 reads B as 16-bit floats (weights kept in f16 on the device). */
#ifdef B_F16
#extension GL_EXT_shader_16bit_storage : require
#define B_TYPE float16_t
#else
#define B_TYPE float
#endif

layout (constant_id = 0) const uint TILE_M = 64;
layout (constant_id = 1) const uint TILE_N = 64;
layout (constant_id = 2) const uint TILE_K = 16;
layout (constant_id = 3) const uint THREAD_M = 4;
layout (constant_id = 4) const uint THREAD_N = 4;
layout (constant_id = 5) const bool TRANS_B = false;
layout (constant_id = 6) const bool HAS_BIAS = false;
layout (constant_id = 7) const uint ACTIVATION = 0;   /* UmgActivation */
layout (constant_id = 8) const bool ACCUMULATE = false;
/* tiled: must equal (TILE_M / THREAD_M) * (TILE_N / THREAD_N); direct: TILE_N / THREAD_N */
layout (constant_id = 9) const uint WORKGROUP_SIZE = 256;
layout (local_size_x_id = 9) in;
/* FALSE: the direct variant for CPU devices (lavapipe), see main_direct() */
layout (constant_id = 10) const bool TILED = true;

layout (std430, binding = 0) readonly buffer BufferA { float a[]; };
layout (std430, binding = 1) readonly buffer BufferB { B_TYPE b[]; };
layout (std430, binding = 2) readonly buffer BufferBias { float bias[]; };
layout (std430, binding = 3) buffer BufferC { float c[]; };

layout (push_constant) uniform Params
{
  uint m, n, k;
  uint lda, ldb, ldc;
  uint stride_a, stride_b, stride_c;
  uint offset_a, offset_b, offset_bias, offset_c;
  uint batch_base;
  float alpha;
} p;

const uint ROWS_APART = TILE_M / THREAD_M;   /* distance between one invocation's rows */
const uint COLS_APART = TILE_N / THREAD_N;

shared float tile_a[TILE_K * TILE_M];        /* [k][m] */
shared float tile_b[TILE_K * TILE_N];        /* [k][n] */

/* Exact GELU needs erf, which GLSL lacks. |x| < 1: its Taylor series (12 terms). Otherwise
 * erfc(x) = t exp(-x² + Q(t)), t = 2 / (2 + x), with Q a degree-9 polynomial fitted (least
 * squares on Chebyshev nodes, mpmath reference) to log(erfc(x) / t) + x² over t in [0, 2/3],
 * fit error 1e-8. Float evaluation: erf within 2e-7 relative everywhere; erfc, used for
 * the negative tail of GELU, within about 2e-6 relative (rounding of x² and exp). */
float
erfc_large (float x)
{
  float t = 2.0 / (2.0 + x);
  float q = -0.06329238;
  q = q * t - 0.066784605;
  q = q * t + 0.47025844;
  q = q * t - 0.39319333;
  q = q * t - 0.03681103;
  q = q * t - 0.1073322;
  q = q * t + 0.085695125;
  q = q * t + 0.37487066;
  q = q * t + 1.0000027;
  q = q * t - 1.2655121;
  return t * exp (q - x * x);
}

float
erf_small (float x)
{
  float s = x * x;
  float e = -1.2290555e-09;
  e = e * s + 1.4807193e-08;
  e = e * s - 1.6365844e-07;
  e = e * s + 1.6462114e-06;
  e = e * s - 1.492565e-05;
  e = e * s + 0.000120553326;
  e = e * s - 0.0008548327;
  e = e * s + 0.005223978;
  e = e * s - 0.026866172;
  e = e * s + 0.11283792;
  e = e * s - 0.37612638;
  e = e * s + 1.1283792;
  return x * e;
}

float
activate (float x)
{
  if (ACTIVATION == 1)
    return x / (1.0 + exp (-1.702 * x));
  if (ACTIVATION == 2)
    {
      float u = x * 0.70710678118654752;
      /* 1 + erf(u): through erfc where erf is close to -1, so nothing cancels */
      float one_plus_erf;
      if (u >= 1.0)
        one_plus_erf = 2.0 - erfc_large (u);
      else if (u > -1.0)
        one_plus_erf = 1.0 + erf_small (u);
      else
        one_plus_erf = erfc_large (-u);
      return 0.5 * x * one_plus_erf;
    }
  return x;
}

float
load_b (uint base_b, uint row_k, uint col_n)
{
  return TRANS_B ? float (b[base_b + col_n * p.ldb + row_k]) : float (b[base_b + row_k * p.ldb + col_n]);
}

void
store_c (uint batch, uint gm, uint gn, float sum)
{
  float value = p.alpha * sum;
  if (HAS_BIAS)
    value += bias[p.offset_bias + gn];
  value = activate (value);
  uint index = p.offset_c + batch * p.stride_c + gm * p.ldc + gn;
  if (ACCUMULATE)
    c[index] += value;
  else
    c[index] = value;
}

/* For CPU devices (lavapipe), which run invocations as SIMD lanes and turn every buffer or
 * shared-memory read into per-lane loads: no shared memory, no barriers, and a
 * THREAD_M × THREAD_N block of C per invocation (rows m0.., columns col0..) straight from
 * global memory, so each loaded value feeds THREAD_N or THREAD_M multiply-adds. */
void
main_direct ()
{
  /* columns col0 + j * WORKGROUP_SIZE: for each j neighbouring invocations read neighbouring
   * elements of a B row */
  const uint col0 = gl_WorkGroupID.x * TILE_N + gl_LocalInvocationID.x;
  const uint m0 = gl_WorkGroupID.y * THREAD_M;
  const uint batch = p.batch_base + gl_WorkGroupID.z;
  const uint base_a = p.offset_a + batch * p.stride_a;
  const uint base_b = p.offset_b + batch * p.stride_b;
  if (col0 >= p.n)
    return;

  /* rows and columns past the end repeat the last one and are not stored */
  uint row_start[THREAD_M];
  uint cols[THREAD_N];
  float acc[THREAD_M * THREAD_N];
  for (uint i = 0; i < THREAD_M; i++)
    row_start[i] = base_a + min (m0 + i, p.m - 1) * p.lda;
  for (uint j = 0; j < THREAD_N; j++)
    cols[j] = min (col0 + j * WORKGROUP_SIZE, p.n - 1);
  for (uint i = 0; i < THREAD_M * THREAD_N; i++)
    acc[i] = 0.0;

  for (uint k = 0; k < p.k; k++)
    {
      float a_values[THREAD_M];
      float b_values[THREAD_N];
      for (uint i = 0; i < THREAD_M; i++)
        a_values[i] = a[row_start[i] + k];
      for (uint j = 0; j < THREAD_N; j++)
        b_values[j] = load_b (base_b, k, cols[j]);
      for (uint i = 0; i < THREAD_M; i++)
        for (uint j = 0; j < THREAD_N; j++)
          acc[i * THREAD_N + j] = fma (a_values[i], b_values[j], acc[i * THREAD_N + j]);
    }
  for (uint i = 0; i < THREAD_M && m0 + i < p.m; i++)
    for (uint j = 0; j < THREAD_N && col0 + j * WORKGROUP_SIZE < p.n; j++)
      store_c (batch, m0 + i, col0 + j * WORKGROUP_SIZE, acc[i * THREAD_N + j]);
}

void
main ()
{
  if (!TILED)
    {
      main_direct ();
      return;
    }
  const uint tid = gl_LocalInvocationID.x;
  const uint thread_col = tid % COLS_APART;
  const uint thread_row = tid / COLS_APART;
  const uint m0 = gl_WorkGroupID.y * TILE_M;
  const uint n0 = gl_WorkGroupID.x * TILE_N;
  const uint batch = p.batch_base + gl_WorkGroupID.z;
  const uint base_a = p.offset_a + batch * p.stride_a;
  const uint base_b = p.offset_b + batch * p.stride_b;

  float acc[THREAD_M * THREAD_N];
  for (uint i = 0; i < THREAD_M * THREAD_N; i++)
    acc[i] = 0.0;

  for (uint k0 = 0; k0 < p.k; k0 += TILE_K)
    {
      /* A tile: consecutive invocations read consecutive k of one row */
      for (uint i = tid; i < TILE_M * TILE_K; i += WORKGROUP_SIZE)
        {
          uint row = i / TILE_K, kk = i % TILE_K;
          uint gm = m0 + row, gk = k0 + kk;
          tile_a[kk * TILE_M + row] = (gm < p.m && gk < p.k) ? a[base_a + gm * p.lda + gk] : 0.0;
        }
      for (uint i = tid; i < TILE_N * TILE_K; i += WORKGROUP_SIZE)
        {
          uint col, kk;
          if (TRANS_B)
            {
              col = i / TILE_K;
              kk = i % TILE_K;
            }
          else
            {
              kk = i / TILE_N;
              col = i % TILE_N;
            }
          uint gn = n0 + col, gk = k0 + kk;
          /* converted before any selection: 16-bit values may only be loaded and converted
           * (storageBuffer16BitAccess), not computed with */
          float value = 0.0;
          if (gn < p.n && gk < p.k)
            value = TRANS_B ? float (b[base_b + gn * p.ldb + gk])
                : float (b[base_b + gk * p.ldb + gn]);
          tile_b[kk * TILE_N + col] = value;
        }
      barrier ();

      for (uint kk = 0; kk < TILE_K; kk++)
        {
          float a_values[THREAD_M];
          float b_values[THREAD_N];
          for (uint i = 0; i < THREAD_M; i++)
            a_values[i] = tile_a[kk * TILE_M + thread_row + i * ROWS_APART];
          for (uint j = 0; j < THREAD_N; j++)
            b_values[j] = tile_b[kk * TILE_N + thread_col + j * COLS_APART];
          for (uint i = 0; i < THREAD_M; i++)
            for (uint j = 0; j < THREAD_N; j++)
              acc[i * THREAD_N + j] = fma (a_values[i], b_values[j], acc[i * THREAD_N + j]);
        }
      barrier ();
    }

  for (uint i = 0; i < THREAD_M; i++)
    {
      uint gm = m0 + thread_row + i * ROWS_APART;
      if (gm >= p.m)
        break;
      for (uint j = 0; j < THREAD_N; j++)
        {
          uint gn = n0 + thread_col + j * COLS_APART;
          if (gn >= p.n)
            break;
          float value = p.alpha * acc[i * THREAD_N + j];
          if (HAS_BIAS)
            value += bias[p.offset_bias + gn];
          value = activate (value);
          uint index = p.offset_c + batch * p.stride_c + gm * p.ldc + gn;
          if (ACCUMULATE)
            c[index] += value;
          else
            c[index] = value;
        }
    }
}
