/* Row kernels of the CPU backend's non-GEMM ops, in two forms: the plain-C reference (the naive
 * twin every fast form is tested against) and vector forms for AVX2 + FMA and AVX-512, picked
 * at run time from what the CPU reports. */
#pragma once

#include "graph.h"

G_BEGIN_DECLS

typedef struct
{
  const gchar *name; /* "c", "avx2", "avx512" */
  /* out = (x - mean) / sqrt(var + eps) * gamma + beta over cols values; gamma, beta may be
   * NULL (1, 0); out may be x. */
  void (*layernorm) (const gfloat *x, const gfloat *gamma, const gfloat *beta, gint cols,
                     gfloat eps, gfloat *out);
  /* In place: row += bias (when set), then the softmax of the first visible values, zeros after
   * them; a row whose visible values are all -inf becomes zeros. */
  void (*softmax) (gfloat *row, const gfloat *bias, gint cols, gint visible);
  /* c = act(product + bias), or c += that when accumulate; bias may be NULL; c may be product. */
  void (*epilogue) (gfloat *c, const gfloat *product, const gfloat *bias, gint n, UmgActivation act,
                    gboolean accumulate);
} UmgCpuKernels;

/* The plain-C reference: double accumulation, libm's expf and erff. */
const UmgCpuKernels *umg_cpu_kernels_reference (void);
/* The kernels for isa ("c", "avx2", "avx512"), NULL where this build or CPU lacks it. */
const UmgCpuKernels *umg_cpu_kernels_for_isa (const gchar *isa);
/* The widest the CPU runs, capped by $UMGCLIP_CPU_ISA (c, avx2 or avx512) when set. */
const UmgCpuKernels *umg_cpu_kernels_best (void);

/* The reference activation, one value. */
gfloat umg_cpu_activate (gfloat x, UmgActivation act);

/* Vector forms, in cpu_kernels_avx2.c and cpu_kernels_avx512.c (x86-64 builds only). */
extern const UmgCpuKernels umg_cpu_kernels_avx2;
extern const UmgCpuKernels umg_cpu_kernels_avx512;

G_END_DECLS
