/* The CPU backend's row kernels for AVX-512F (16 floats a vector), chosen at run time. */
#include "cpu_kernels.h"

#if defined(__x86_64__)
#pragma GCC target("avx512f")
/* clang ignores the GCC pragma: it takes the target as a function attribute */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#endif
#include <immintrin.h>
#include <math.h>

typedef __m512 vf;
#define v_set1 _mm512_set1_ps
#define v_load _mm512_loadu_ps
#define v_store _mm512_storeu_ps
#define v_add _mm512_add_ps
#define v_sub _mm512_sub_ps
#define v_mul _mm512_mul_ps
#define v_div _mm512_div_ps
#define v_max _mm512_max_ps
#define v_min _mm512_min_ps
#define v_fma _mm512_fmadd_ps
#define LANES 16

static inline __mmask16
lane_mask (gint n)
{
  return n >= LANES ? (__mmask16) 0xffff : (__mmask16) ((1u << n) - 1);
}

/* The first n (1 .. LANES) values at p, fill in the other lanes. */
static inline vf
v_load_part (const gfloat *p, gint n, gfloat fill)
{
  return _mm512_mask_loadu_ps (_mm512_set1_ps (fill), lane_mask (n), p);
}

static inline void
v_store_part (gfloat *p, vf v, gint n)
{
  _mm512_mask_storeu_ps (p, lane_mask (n), v);
}

#define v_abs _mm512_abs_ps

/* x < limit ? if_less : otherwise, lane by lane */
#define v_select_lt(x, limit, if_less, otherwise)                                                  \
  _mm512_mask_blend_ps (_mm512_cmp_ps_mask (x, limit, _CMP_LT_OQ), otherwise, if_less)

#define v_round(x) _mm512_roundscale_ps (x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

/* 2^n for whole n in [-126, 128] (128 gives +inf) */
#define v_pow2(n)                                                                                  \
  _mm512_castsi512_ps (                                                                            \
      _mm512_slli_epi32 (_mm512_add_epi32 (_mm512_cvtps_epi32 (n), _mm512_set1_epi32 (127)), 23))

#define v_hsum _mm512_reduce_add_ps

#define v_hmax _mm512_reduce_max_ps

#define KERNELS umg_cpu_kernels_avx512
#define ISA_NAME "avx512"
#include "cpu_kernels_simd.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
