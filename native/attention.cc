// Scaled dot-product attention for the U-Net's self-attention blocks (the paper's Appendix B: one head at
// 16x16; diffusers' multi-head form arrives as samples x heads), forward and gradient, on [B, D, L] tensors:
//   s_ij = scale q_i . k_j,  p_ij = softmax_j(s_ij),  o_i = sum_j p_ij v_j,  lse_i = log sum_j e^(s_ij).
// ONNX Runtime runs it as a MatMul, a Softmax and a MatMul, writing the [B, L, Lk] weights (16 MB per layer of
// S at batch 64) between them, and a training graph keeps them for its backward. Here a block of queries
// at a time makes its weights in cache and uses them there: the forward keeps only lse, and the backward
// makes each block's weights again from it (p_ij = e^(s_ij - lse_i)), as FlashAttention does.
// Every product is a register tile of 8 rows x 3 vectors (AVX-512; 4 x 2 on AVX2) whose row values are
// broadcast, as ConvWeightGrad's tiles: no product needs a transposed copy except dq's (dS^T per block).
#include "attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "simd.h"

#if defined(__AVX512F__)
constexpr int kV = 16, kR = 8, kNV = 3;  // 24 accumulators + 3 vectors + 1 broadcast of 32 registers
#else
constexpr int kV = 8, kR = 4, kNV = 2;  // 8 + 2 + 1 of 16
#endif
typedef float Vec __attribute__((vector_size(kV * 4)));
typedef float VecU __attribute__((vector_size(kV * 4), aligned(4)));
constexpr int64_t kQB = kNV * kV;  // queries per block

bool attnShapesOk(int64_t d, int64_t dv, int64_t l, int64_t lk) {
  return d > 0 && dv > 0 && l > 0 && lk > 0 && l % 16 == 0 && lk % 16 == 0 && d % 8 == 0 && dv % 8 == 0;
}

// C[r ldc + v kV ..] = (acc ? C : 0) + sum over k < K of A[k ak + r ar] times B[k bk + v kV ..], for rows
// r < kR and vectors v < NV. Not inlined: inside its callers GCC spills accumulators.
template <int NV>
__attribute__((noinline)) static void tile(const float* A, int64_t ak, int64_t ar, const float* B, int64_t bk,
                                           int64_t K, float* C, int64_t ldc, bool acc) {
  Vec s[kR][NV];
  for (int r = 0; r < kR; r++)
    for (int v = 0; v < NV; v++) s[r][v] = acc ? *reinterpret_cast<const VecU*>(C + r * ldc + v * kV) : Vec{};
  for (int64_t k = 0; k < K; k++) {
    Vec b[NV];
    for (int v = 0; v < NV; v++) b[v] = *reinterpret_cast<const VecU*>(B + k * bk + v * kV);
    const float* a = A + k * ak;
    for (int r = 0; r < kR; r++) {
      Vec x = splat<Vec>(a[r * ar]);
#if defined(__x86_64__)
      asm("" : "+v"(x));  // one broadcast per row value, kept for its NV uses
#endif
      for (int v = 0; v < NV; v++) s[r][v] += x * b[v];
    }
  }
  for (int r = 0; r < kR; r++)
    for (int v = 0; v < NV; v++) *reinterpret_cast<VecU*>(C + r * ldc + v * kV) = s[r][v];
}

// The product over `rows` rows (a multiple of kR) and `vecs` vectors: C (+)= A^T B in tile's terms.
static void gemm(const float* A, int64_t ak, int64_t ar, const float* B, int64_t bk, int64_t K, float* C,
                 int64_t ldc, int64_t rows, int64_t vecs, bool acc) {
  for (int64_t r0 = 0; r0 < rows; r0 += kR) {
    const float* a = A + r0 * ar;
    float* c = C + r0 * ldc;
    int64_t v = 0;
    for (; v + kNV <= vecs; v += kNV) tile<kNV>(a, ak, ar, B + v * kV, bk, K, c + v * kV, ldc, acc);
    for (; v + 2 <= vecs; v += 2) tile<2>(a, ak, ar, B + v * kV, bk, K, c + v * kV, ldc, acc);
    if (v < vecs) tile<1>(a, ak, ar, B + v * kV, bk, K, c + v * kV, ldc, acc);
  }
}

// dst[c rows + r] = src[r cols + c] (rows and cols multiples of 16).
static void transposeRows(const float* src, int64_t rows, int64_t cols, float* dst) {
  for (int64_t r0 = 0; r0 < rows; r0 += 16)
    for (int64_t c0 = 0; c0 < cols; c0 += 16) {
#if defined(__AVX512F__)
      __m512 t[16];
      for (int i = 0; i < 16; i++) t[i] = _mm512_loadu_ps(src + (r0 + i) * cols + c0);
      transpose16(t);
      for (int i = 0; i < 16; i++) _mm512_storeu_ps(dst + (c0 + kTr16Order[i]) * rows + r0, t[i]);
#else
      for (int64_t c = c0; c < c0 + 16; c++)
        for (int64_t r = r0; r < r0 + 16; r++) dst[c * rows + r] = src[r * cols + c];
#endif
    }
}

int64_t attnForwardUnits(const AttnJob& j) { return j.b * ((j.l + kQB - 1) / kQB); }

void attnForwardUnit(const AttnJob& j, int64_t u) {
  const int64_t blocks = (j.l + kQB - 1) / kQB, n = u / blocks, i0 = u % blocks * kQB;
  const int64_t nq = std::min(kQB, j.l - i0), L = j.l, Lk = j.lk;
  const float* q = j.q + n * j.d * L;   // [D, L]
  const float* k = j.k + n * j.d * Lk;  // [D, Lk]
  const float* v = j.v + n * j.dv * Lk;  // [Dv, Lk]
  float* o = j.out + n * j.dv * L;       // [Dv, L]
  float* st = threadScratch(Lk * kQB);         // s^T, then p^T: [Lk, nq]
  gemm(k, Lk, 1, q + i0, L, j.d, st, nq, Lk, nq / kV, false);  // st[key][query] = k_key . q_query
  float m[kQB], sum[kQB];
  std::fill(m, m + nq, -std::numeric_limits<float>::infinity());
  std::fill(sum, sum + nq, 0.f);
  for (int64_t c = 0; c < Lk; c++) {  // the scores scaled in place, and each query's largest
    float* row = st + c * nq;
#pragma omp simd
    for (int64_t i = 0; i < nq; i++) m[i] = std::max(m[i], row[i] *= j.scale);
  }
  for (int64_t c = 0; c < Lk; c++) {
    float* row = st + c * nq;
#pragma omp simd
    for (int64_t i = 0; i < nq; i++) {
      const float p = expInline(row[i] - m[i]);
      row[i] = p;
      sum[i] += p;
    }
  }
  for (int64_t i = 0; i < nq; i++) j.outLse[n * L + i0 + i] = m[i] + std::log(sum[i]);
  gemm(v, 1, Lk, st, nq, Lk, o + i0, L, j.dv, nq / kV, false);  // o[c][query] = sum_key v[c][key] p[key][query]
  for (int64_t i = 0; i < nq; i++) sum[i] = 1.f / sum[i];
  for (int64_t c = 0; c < j.dv; c++) {
    float* row = o + c * L + i0;
#pragma omp simd
    for (int64_t i = 0; i < nq; i++) row[i] *= sum[i];
  }
}

void attnBackwardUnit(const AttnJob& j, int64_t n) {
  const int64_t L = j.l, Lk = j.lk;
  const float* q = j.q + n * j.d * L;
  const float* k = j.k + n * j.d * Lk;
  const float* v = j.v + n * j.dv * Lk;
  const float* o = j.o + n * j.dv * L;
  const float* dO = j.dO + n * j.dv * L;
  const float* lse = j.lse + n * L;
  float* dq = j.dq + n * j.d * L;
  float* dk = j.dk + n * j.d * Lk;
  float* dv = j.dvOut + n * j.dv * Lk;
  float* p = threadScratch(3 * kQB * Lk);  // p [nq, Lk], dS [nq, Lk], dS^T [Lk, nq]
  float* ds = p + kQB * Lk;
  float* dst = ds + kQB * Lk;
  float dd[kQB];
  for (int64_t i0 = 0; i0 < L; i0 += kQB) {
    const int64_t nq = std::min(kQB, L - i0), kv = Lk / kV;
    gemm(q + i0, L, 1, k, Lk, j.d, p, Lk, nq, kv, false);  // s[query][key]
    for (int64_t i = 0; i < nq; i++) {
      float* row = p + i * Lk;
      const float ls = lse[i0 + i];
#pragma omp simd
      for (int64_t c = 0; c < Lk; c++) row[c] = expInline(j.scale * row[c] - ls);  // p, made again
    }
    gemm(dO + i0, L, 1, v, Lk, j.dv, ds, Lk, nq, kv, false);  // dp[query][key] = dO_query . v_key
    std::fill(dd, dd + nq, 0.f);
    for (int64_t c = 0; c < j.dv; c++) {  // D_i = dO_i . o_i = sum_key p dp
      const float* a = dO + c * L + i0;
      const float* b = o + c * L + i0;
#pragma omp simd
      for (int64_t i = 0; i < nq; i++) dd[i] += a[i] * b[i];
    }
    for (int64_t i = 0; i < nq; i++) {  // ds = scale p (dp - D)
      float* row = ds + i * Lk;
      const float* pr = p + i * Lk;
      const float di = dd[i];
#pragma omp simd
      for (int64_t c = 0; c < Lk; c++) row[c] = j.scale * pr[c] * (row[c] - di);
    }
    const bool acc = i0 > 0;  // the first block writes dv and dk, the others add to them
    gemm(dO + i0, 1, L, p, Lk, nq, dv, Lk, j.dv, kv, acc);  // dv[c][key] += sum_query dO[c][query] p
    gemm(q + i0, 1, L, ds, Lk, nq, dk, Lk, j.d, kv, acc);   // dk[c][key] += sum_query q[c][query] ds
    transposeRows(ds, nq, Lk, dst);
    gemm(k, 1, Lk, dst, nq, Lk, dq + i0, L, j.d, nq / kV, false);  // dq[c][query] = sum_key k[c][key] ds
  }
}
