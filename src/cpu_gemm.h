/* Matrix products for the CPU backend through the GEMM library chosen by measurement
 * (docs/PERFORMANCE.md): oneDNN on AVX-512 CPUs where the build has it, with weight matrices
 * packed once into the library's own layout and bias, activation and accumulation fused into
 * the product's epilogue; OpenBLAS (cblas) on AVX2 CPUs and in builds without oneDNN;
 * UMGCLIP_CPU_GEMM=onednn|openblas overrides the choice. Every product runs single-threaded in the
 * calling pool thread on a tile the backend cut, so the library never starts threads of its own. */
#pragma once

#include "cpu_kernels.h"

G_BEGIN_DECLS

typedef struct _UmgCpuGemmEngine UmgCpuGemmEngine;
typedef struct _UmgCpuGemm UmgCpuGemm;

/* Tile of one product: C [m, n] (+)= act(alpha A [m, k] · op(B) + bias), as UmgMatmulParams. */
typedef struct
{
  gint m, n, k;
  gint lda, ldb, ldc;
  gboolean trans_b, accumulate, bias;
  UmgActivation act;
  gfloat alpha;
  /* B's first element when B is a model weight: then an engine that packs (see
   * umg_cpu_gemm_engine_packs) copies it once into the library's layout, shared by every plan
   * through weight_key, and run ignores its b; packable_b need only live through
   * umg_cpu_gemm_new. An engine that does not pack reads packable_b at every run. NULL: B is
   * passed to run. */
  const gfloat *packable_b;
  gconstpointer weight_key; /* where the weight's tile lies in the model, whatever its dtype */
} UmgCpuGemmShape;

/* n_threads: the pool's thread count; kernels: the row kernels in use, whose instruction set
 * picks the library by default, and the epilogue of the cblas path. */
UmgCpuGemmEngine *umg_cpu_gemm_engine_new (guint n_threads, const UmgCpuKernels *kernels,
                                           GError **error);
void umg_cpu_gemm_engine_free (UmgCpuGemmEngine *engine);
/* TRUE when products keep their own copies of weight matrices (oneDNN). */
gboolean umg_cpu_gemm_engine_packs (const UmgCpuGemmEngine *engine);
/* "oneDNN 2.6.3" or "OpenBLAS". */
const gchar *umg_cpu_gemm_engine_library (const UmgCpuGemmEngine *engine);
/* Drops every packed weight: the weights they came from are going away. Products made before
 * must be freed first. */
void umg_cpu_gemm_engine_forget_weights (UmgCpuGemmEngine *engine);

/* Between enter and leave the calling thread runs library calls single-threaded (as the pool's
 * workers always do); leave restores the caller's own setting. Wrap planning and running. */
gint umg_cpu_gemm_enter (void);
void umg_cpu_gemm_leave (gint saved);

UmgCpuGemm *umg_cpu_gemm_new (UmgCpuGemmEngine *engine, const UmgCpuGemmShape *shape,
                              GError **error);
void umg_cpu_gemm_free (UmgCpuGemm *gemm);
/* One tile on pool thread thread; pointers to the tile's first elements (b is ignored when the
 * tile's B is packed, bias when the shape has none). Concurrent runs of one product are safe on
 * distinct threads. */
void umg_cpu_gemm_run (UmgCpuGemm *gemm, const gfloat *a, const gfloat *b, const gfloat *bias,
                       gfloat *c, guint thread);

G_END_DECLS
