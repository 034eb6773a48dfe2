/* The CPU backend's row kernels for AVX2 + FMA (8 floats a vector), chosen at run time. */
#include "cpu_kernels.h"

#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
/* clang ignores the GCC pragma: it takes the target as a function attribute */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#endif
#include <immintrin.h>
#include <math.h>

typedef __m256 vf;
#define v_set1 _mm256_set1_ps
#define v_load _mm256_loadu_ps
#define v_store _mm256_storeu_ps
#define v_add _mm256_add_ps
#define v_sub _mm256_sub_ps
#define v_mul _mm256_mul_ps
#define v_div _mm256_div_ps
#define v_max _mm256_max_ps
#define v_min _mm256_min_ps
#define v_fma _mm256_fmadd_ps
#define LANES 8

static inline __m256i
lane_mask (gint n)
{
  return _mm256_cmpgt_epi32 (_mm256_set1_epi32 (n), _mm256_setr_epi32 (0, 1, 2, 3, 4, 5, 6, 7));
}

/* The first n (1 .. LANES) values at p, fill in the other lanes. */
static inline vf
v_load_part (const gfloat *p, gint n, gfloat fill)
{
  if (n >= LANES)
    return v_load (p);
  return _mm256_blendv_ps (_mm256_set1_ps (fill), _mm256_maskload_ps (p, lane_mask (n)),
                           _mm256_castsi256_ps (lane_mask (n)));
}

static inline void
v_store_part (gfloat *p, vf v, gint n)
{
  if (n >= LANES)
    v_store (p, v);
  else
    _mm256_maskstore_ps (p, lane_mask (n), v);
}

#define v_abs(x) _mm256_andnot_ps (_mm256_set1_ps (-0.0f), x)

/* x < limit ? if_less : otherwise, lane by lane */
#define v_select_lt(x, limit, if_less, otherwise)                                                  \
  _mm256_blendv_ps (otherwise, if_less, _mm256_cmp_ps (x, limit, _CMP_LT_OQ))

#define v_round(x) _mm256_round_ps (x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

/* 2^n for whole n in [-126, 128] (128 gives +inf) */
#define v_pow2(n)                                                                                  \
  _mm256_castsi256_ps (                                                                            \
      _mm256_slli_epi32 (_mm256_add_epi32 (_mm256_cvtps_epi32 (n), _mm256_set1_epi32 (127)), 23))

/* one lane of op over all eight: halves, then pairs, then neighbours */
#define HORIZONTAL(v, op)                                                                          \
  __m128 x = op##_ps (_mm256_castps256_ps128 (v), _mm256_extractf128_ps (v, 1));                   \
  x = op##_ps (x, _mm_movehl_ps (x, x));                                                           \
  x = op##_ss (x, _mm_movehdup_ps (x));                                                            \
  return _mm_cvtss_f32 (x)

static inline gfloat
v_hsum (vf v)
{
  HORIZONTAL (v, _mm_add);
}

static inline gfloat
v_hmax (vf v)
{
  HORIZONTAL (v, _mm_max);
}

#define KERNELS umg_cpu_kernels_avx2
#define ISA_NAME "avx2"
#include "cpu_kernels_simd.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
