// Small helpers shared by the native kernels (ortnative.cc, attention.cc, winograd.cc): an exp that vectorizes
// inline, a 16x16 register transpose, and a per-thread scratch buffer.
#pragma once
#if defined(__AVX2__)
#include <immintrin.h>
#endif
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

// A per-thread buffer of at least `floats` floats, kept between calls (one for all the kernels that use it: a
// thread runs one kernel's unit at a time, and none keeps the pointer past its unit).
inline float* threadScratch(int64_t floats) {
  thread_local std::vector<float> buf;
  if (int64_t(buf.size()) < floats) buf.resize(size_t(floats));
  return buf.data();
}

// A vector of V with every lane x: x - 0 in each lane is x exactly (also for -0), so the compiler emits one
// broadcast from memory; `V{} + x` must keep the scalar add (0 + -0 is +0), an extra add and shuffle per value.
template <typename V>
inline V splat(float x) {
  return x - V{};
}

// e^x written so that an `omp simd` loop vectorizes it inline (libmvec's expf is a call per vector):
// x = n ln2 + r with |r| <= ln2/2, e^r by its Taylor polynomial of degree 6 (relative error at most 4.3e-7
// over [-87, 88]), times 2^n built in the exponent bits; x is clamped to [-87, 88], where 2^n stays normal.
inline float expInline(float x) {
  x = std::fmin(std::fmax(x, -87.f), 88.f);
  const int32_t n = int32_t(x * 1.44269504088896341f + 128.5f) - 128;  // round(x / ln2), truncating a positive
  const float nf = float(n);
  const float r = (x - nf * 0.693145751953125f) - nf * 1.42860682030941723212e-6f;  // ln2 in two parts
  float p = 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  const int32_t bits = (n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
// Column of a 16x16 transpose (transpose16) held by its register i.
inline constexpr int kTr16Order[16] = {0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15};

#if defined(__AVX512F__)
// r[0..15] (16 rows of 16 floats) transposed in registers: unpacks, then 128-bit lane shuffles; column c of
// the input ends in r[i] with kTr16Order[i] = c.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++)
    for (int h = 0; h < 2; h++) {
      const __m512d a = _mm512_castps_pd(t[4 * i + h]), b = _mm512_castps_pd(t[4 * i + 2 + h]);
      r[4 * i + h] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
      r[4 * i + 2 + h] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    }
  for (int i = 0; i < 2; i++)
    for (int h = 0; h < 4; h++) {
      t[8 * i + h] = _mm512_shuffle_f32x4(r[8 * i + h], r[8 * i + 4 + h], 0x88);
      t[8 * i + 4 + h] = _mm512_shuffle_f32x4(r[8 * i + h], r[8 * i + 4 + h], 0xDD);
    }
  for (int h = 0; h < 8; h++) {
    r[h] = _mm512_shuffle_f32x4(t[h], t[8 + h], 0x88);
    r[8 + h] = _mm512_shuffle_f32x4(t[h], t[8 + h], 0xDD);
  }
}
#endif

