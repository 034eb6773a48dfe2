/* Helpers shared by the CPU backend's tests (test_cpu_ops.c, test_cpu_kernels.c). */
#pragma once

#include <glib.h>
#include <math.h>

/* ‖got - expected‖ / ‖expected‖ */
static inline gdouble
relative_error (const gfloat *got, const gfloat *expected, gsize n)
{
  gdouble difference = 0.0, norm = 0.0;

  for (gsize i = 0; i < n; i++)
    {
      difference += ((gdouble) got[i] - expected[i]) * ((gdouble) got[i] - expected[i]);
      norm += (gdouble) expected[i] * expected[i];
    }
  return sqrt (difference) / MAX (sqrt (norm), 1e-30);
}

/* n values uniform in [low, high) */
static inline void
fill_random_range (GRand *rand, gfloat *values, gsize n, gdouble low, gdouble high)
{
  for (gsize i = 0; i < n; i++)
    values[i] = (gfloat) g_rand_double_range (rand, low, high);
}
