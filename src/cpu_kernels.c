/* The plain-C reference of the CPU backend's row kernels, and the run-time choice of their
 * vector forms. */
#include "cpu_kernels.h"

#include <math.h>

gfloat
umg_cpu_activate (gfloat x, UmgActivation act)
{
  switch (act)
    {
    case UMG_ACT_QUICK_GELU:
      return x / (1.0f + expf (-1.702f * x));
    case UMG_ACT_GELU:
      return 0.5f * x * (1.0f + erff (x * (gfloat) M_SQRT1_2));
    case UMG_ACT_NONE:
      break;
    }
  return x;
}

static void
reference_layernorm (const gfloat *x, const gfloat *gamma, const gfloat *beta, gint cols,
                     gfloat eps, gfloat *out)
{
  gdouble mean = 0.0, variance = 0.0, inv_std;

  for (gint c = 0; c < cols; c++)
    mean += x[c];
  mean /= cols;
  for (gint c = 0; c < cols; c++)
    variance += (x[c] - mean) * (x[c] - mean);
  /* population variance, as torch's layer_norm */
  variance /= cols;
  inv_std = 1.0 / sqrt (variance + eps);
  for (gint c = 0; c < cols; c++)
    {
      gdouble normalised = (x[c] - mean) * inv_std;
      out[c] = (gfloat) (normalised * (gamma ? gamma[c] : 1.0f) + (beta ? beta[c] : 0.0f));
    }
}

static void
reference_softmax (gfloat *row, const gfloat *bias, gint cols, gint visible)
{
  gfloat max = -INFINITY;
  gdouble sum = 0.0;

  if (bias != NULL)
    for (gint c = 0; c < cols; c++)
      row[c] += bias[c];
  for (gint c = 0; c < visible; c++)
    max = MAX (max, row[c]);
  /* A row masked out entirely by -inf biases gives zeros rather than NaN. */
  if (max == -INFINITY)
    visible = 0;
  for (gint c = 0; c < visible; c++)
    {
      row[c] = expf (row[c] - max);
      sum += row[c];
    }
  for (gint c = 0; c < visible; c++)
    row[c] = (gfloat) (row[c] / sum);
  for (gint c = visible; c < cols; c++)
    row[c] = 0.0f;
}

static void
reference_epilogue (gfloat *c, const gfloat *product, const gfloat *bias, gint n, UmgActivation act,
                    gboolean accumulate)
{
  for (gint j = 0; j < n; j++)
    {
      gfloat value = umg_cpu_activate (product[j] + (bias ? bias[j] : 0.0f), act);
      c[j] = accumulate ? c[j] + value : value;
    }
}

static const UmgCpuKernels reference_kernels = {
  .name = "c",
  .layernorm = reference_layernorm,
  .softmax = reference_softmax,
  .epilogue = reference_epilogue,
};

const UmgCpuKernels *
umg_cpu_kernels_reference (void)
{
  return &reference_kernels;
}

const UmgCpuKernels *
umg_cpu_kernels_for_isa (const gchar *isa)
{
  if (g_strcmp0 (isa, "c") == 0)
    return &reference_kernels;
#if defined(__x86_64__)
  __builtin_cpu_init ();
  if (g_strcmp0 (isa, "avx512") == 0 && __builtin_cpu_supports ("avx512f"))
    return &umg_cpu_kernels_avx512;
  if (g_strcmp0 (isa, "avx2") == 0 && __builtin_cpu_supports ("avx2")
      && __builtin_cpu_supports ("fma"))
    return &umg_cpu_kernels_avx2;
#endif
  return NULL;
}

const UmgCpuKernels *
umg_cpu_kernels_best (void)
{
  static const gchar *const widest_first[] = { "avx512", "avx2", "c" };
  const gchar *cap = g_getenv ("UMGCLIP_CPU_ISA");
  gboolean allowed = cap == NULL || *cap == '\0';

  for (guint i = 0; i < G_N_ELEMENTS (widest_first); i++)
    {
      const UmgCpuKernels *kernels;
      allowed = allowed || g_strcmp0 (cap, widest_first[i]) == 0;
      if (allowed && (kernels = umg_cpu_kernels_for_isa (widest_first[i])) != NULL)
        return kernels;
    }
  return &reference_kernels;
}
