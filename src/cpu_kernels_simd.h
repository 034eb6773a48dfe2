/* The vector row kernels, written once over a small set of vector helpers that the including
 * file defines for its instruction set (cpu_kernels_avx2.c, cpu_kernels_avx512.c): vf, LANES,
 * v_set1, v_load, v_store, v_load_part, v_store_part, v_add, v_sub, v_mul, v_div, v_fma,
 * v_max, v_min, v_abs, v_select_lt, v_round, v_pow2, v_hsum, v_hmax; then KERNELS and
 * ISA_NAME. Not a header of its own: included once per instruction set. */

/* e^x within about 2 ulp (Cephes' expf polynomial); 0 below -87.3, +inf above 88.7. */
static inline vf
v_exp (vf x)
{
  vf too_small = v_set1 (-87.3365478515625f);
  vf clamped = v_max (v_min (x, v_set1 (88.7228390520683f)), too_small);
  vf n = v_round (v_mul (clamped, v_set1 (1.44269504088896341f)));
  vf r = v_fma (n, v_set1 (-0.693359375f), clamped);
  vf p;
  r = v_fma (n, v_set1 (2.12194440e-4f), r);
  p = v_set1 (1.9875691500E-4f);
  p = v_fma (p, r, v_set1 (1.3981999507E-3f));
  p = v_fma (p, r, v_set1 (8.3334519073E-3f));
  p = v_fma (p, r, v_set1 (4.1665795894E-2f));
  p = v_fma (p, r, v_set1 (1.6666665459E-1f));
  p = v_fma (p, r, v_set1 (5.0000001201E-1f));
  p = v_fma (p, v_mul (r, r), v_add (r, v_set1 (1.0f)));
  return v_select_lt (x, too_small, v_set1 (0.0f), v_mul (p, v_pow2 (n)));
}

/* 1 + erf(u) as matmul.comp computes it: a Taylor series for |u| < 1, else through erfc, so
 * that nothing cancels in the negative tail. */
static inline vf
v_one_plus_erf (vf u)
{
  vf a = v_abs (u), s = v_mul (u, u), one = v_set1 (1.0f);
  vf t = v_div (v_set1 (2.0f), v_add (v_set1 (2.0f), a));
  vf q = v_set1 (-0.06329238f), e = v_set1 (-1.2290555e-09f), erfc_a, tail;
  static const gfloat q_coefficients[]
      = { -0.066784605f, 0.47025844f, -0.39319333f, -0.03681103f, -0.1073322f,
          0.085695125f,  0.37487066f, 1.0000027f,   -1.2655121f };
  static const gfloat e_coefficients[]
      = { 1.4807193e-08f,  -1.6365844e-07f, 1.6462114e-06f, -1.492565e-05f,
          0.000120553326f, -0.0008548327f,  0.005223978f,   -0.026866172f,
          0.11283792f,     -0.37612638f,    1.1283792f };
  for (guint i = 0; i < G_N_ELEMENTS (q_coefficients); i++)
    q = v_fma (q, t, v_set1 (q_coefficients[i]));
  for (guint i = 0; i < G_N_ELEMENTS (e_coefficients); i++)
    e = v_fma (e, s, v_set1 (e_coefficients[i]));
  erfc_a = v_mul (t, v_exp (v_sub (q, s)));
  /* u >= 1: 2 - erfc(u); u <= -1: erfc(-u) */
  tail = v_select_lt (u, v_set1 (0.0f), erfc_a, v_sub (v_set1 (2.0f), erfc_a));
  return v_select_lt (a, one, v_fma (u, e, one), tail);
}

static inline vf
v_activate (vf x, UmgActivation act)
{
  switch (act)
    {
    case UMG_ACT_QUICK_GELU:
      return v_div (x, v_add (v_set1 (1.0f), v_exp (v_mul (x, v_set1 (-1.702f)))));
    case UMG_ACT_GELU:
      return v_mul (v_mul (x, v_set1 (0.5f)),
                    v_one_plus_erf (v_mul (x, v_set1 ((gfloat) G_SQRT2 * 0.5f))));
    case UMG_ACT_NONE:
      break;
    }
  return x;
}

static void
simd_layernorm (const gfloat *x, const gfloat *gamma, const gfloat *beta, gint cols, gfloat eps,
                gfloat *out)
{
  vf sum0 = v_set1 (0.0f), sum1 = v_set1 (0.0f), mean_v, inv_std_v;
  gfloat mean, variance;
  gint c;

  for (c = 0; c + 2 * LANES <= cols; c += 2 * LANES)
    {
      sum0 = v_add (sum0, v_load (x + c));
      sum1 = v_add (sum1, v_load (x + c + LANES));
    }
  for (; c < cols; c += LANES)
    sum0 = v_add (sum0, v_load_part (x + c, cols - c, 0.0f));
  mean = v_hsum (v_add (sum0, sum1)) / cols;
  mean_v = v_set1 (mean);
  sum0 = sum1 = v_set1 (0.0f);
  for (c = 0; c + 2 * LANES <= cols; c += 2 * LANES)
    {
      vf d0 = v_sub (v_load (x + c), mean_v), d1 = v_sub (v_load (x + c + LANES), mean_v);
      sum0 = v_fma (d0, d0, sum0);
      sum1 = v_fma (d1, d1, sum1);
    }
  for (; c < cols; c += LANES)
    {
      /* lanes past the row read as the mean: they add nothing */
      vf d = v_sub (v_load_part (x + c, cols - c, mean), mean_v);
      sum0 = v_fma (d, d, sum0);
    }
  /* population variance, as torch's layer_norm */
  variance = v_hsum (v_add (sum0, sum1)) / cols;
  inv_std_v = v_set1 (1.0f / sqrtf (variance + eps));
  for (c = 0; c < cols; c += LANES)
    {
      gint n = MIN (LANES, cols - c);
      vf value = v_mul (v_sub (v_load_part (x + c, n, 0.0f), mean_v), inv_std_v);
      if (gamma != NULL)
        value = v_mul (value, v_load_part (gamma + c, n, 0.0f));
      if (beta != NULL)
        value = v_add (value, v_load_part (beta + c, n, 0.0f));
      v_store_part (out + c, value, n);
    }
}

static void
simd_softmax (gfloat *row, const gfloat *bias, gint cols, gint visible)
{
  vf max_v = v_set1 (-INFINITY), sum_v = v_set1 (0.0f), scale;
  gfloat max;
  gint c;

  if (bias != NULL)
    for (c = 0; c < cols; c += LANES)
      {
        gint n = MIN (LANES, cols - c);
        v_store_part (row + c,
                      v_add (v_load_part (row + c, n, 0.0f), v_load_part (bias + c, n, 0.0f)), n);
      }
  for (c = 0; c < visible; c += LANES)
    max_v = v_max (max_v, v_load_part (row + c, visible - c, -INFINITY));
  max = v_hmax (max_v);
  /* A row masked out entirely by -inf biases gives zeros rather than NaN. */
  if (max == -INFINITY)
    visible = 0;
  for (c = 0; c < visible; c += LANES)
    {
      gint n = MIN (LANES, visible - c);
      vf e = v_exp (v_sub (v_load_part (row + c, n, -INFINITY), v_set1 (max)));
      sum_v = v_add (sum_v, e);
      v_store_part (row + c, e, n);
    }
  scale = v_set1 (1.0f / v_hsum (sum_v));
  for (c = 0; c < visible; c += LANES)
    {
      gint n = MIN (LANES, visible - c);
      v_store_part (row + c, v_mul (v_load_part (row + c, n, 0.0f), scale), n);
    }
  for (c = visible; c < cols; c++)
    row[c] = 0.0f;
}

static void
simd_epilogue (gfloat *c, const gfloat *product, const gfloat *bias, gint n, UmgActivation act,
               gboolean accumulate)
{
  for (gint j = 0; j < n; j += LANES)
    {
      gint count = MIN (LANES, n - j);
      vf value = v_load_part (product + j, count, 0.0f);
      if (bias != NULL)
        value = v_add (value, v_load_part (bias + j, count, 0.0f));
      value = v_activate (value, act);
      if (accumulate)
        value = v_add (value, v_load_part (c + j, count, 0.0f));
      v_store_part (c + j, value, count);
    }
}

const UmgCpuKernels KERNELS = {
  .name = ISA_NAME,
  .layernorm = simd_layernorm,
  .softmax = simd_softmax,
  .epilogue = simd_epilogue,
};
