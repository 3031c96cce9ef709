// Winograd F(m x m, 3x3), m = 2 or 4 (Lavin & Gray 2016), for the U-Net's 3x3 convolutions (Ho et al. 2020
// appendix B: every ResNet block's two) and their weight gradients, on ONNX Runtime's NCHWc blocked layout
// (blocks of 16 channels on AVX-512 builds, 8 on AVX2). Each m x m output tile is made from its (m + 2) x
// (m + 2) input tile d: d -> B^T d B ((m + 2)^2 values per input channel), one product M_xi = V_xi U_xi over the
// channels per position xi (U = G g G^T of each filter, transformed once when the graph is built or by
// WinogradFilter each training step), then A^T m A plus the bias. Per channel pair and output pixel: 4
// multiplies (m = 2) or 2.25 (m = 4) instead of the direct convolution's 9, at the price of the transforms
// (adds, and for m = 4 small constant multiples). A unit of work is a chunk of one image's tiles, sized so its
// transformed tiles stay in a core's L2 cache. The products are register tiles (outerTile) of 6 tiles x up to 4
// vectors of 16 output channels (AVX-512) or 6 x 2 vectors of 8 (AVX2). F(4x4, 3x3) uses the points 0, 1, -1,
// 2, -2 and infinity: its float32 rounding is about ten times F(2x2, 3x3)'s (src/engine/nativeWinograd.test.ts
// bounds both against float64). The bfloat16 form (WinoJob.ub, builds with AVX-512 BF16; graph pass winograd-bf16
// uses it with F(2x2)) stores the transformed tiles in bfloat16 and multiplies channel pairs by VDPBF16PS.
#include "winograd.h"

#include <algorithm>

#include "simd.h"

// One NCHWc block of B floats as a vector: 16 (AVX-512 builds' layout) or 8 (AVX2's).
template <int B>
struct Lanes;
template <>
struct Lanes<16> {
  typedef float V __attribute__((vector_size(64)));
  typedef float VU __attribute__((vector_size(64), aligned(4)));
};
template <>
struct Lanes<8> {
  typedef float V __attribute__((vector_size(32)));
  typedef float VU __attribute__((vector_size(32), aligned(4)));
};
template <int B>
using Vec = typename Lanes<B>::V;
template <int B>
static inline Vec<B> ld(const float* p) {
  return *reinterpret_cast<const typename Lanes<B>::VU*>(p);
}
template <int B>
static inline void st(float* p, Vec<B> v) {
  *reinterpret_cast<typename Lanes<B>::VU*>(p) = v;
}
typedef Vec<16> V16;  // the filter transform's 16 filters at a time, whatever the layout

// Keeps a broadcast in a register for all its uses (GCC otherwise re-broadcasts from memory per use): an
// 8-float register with AVX, a 16-float one only with AVX-512.
template <int B>
static inline void keep(Vec<B>& v) {
#if defined(__AVX__)
  if constexpr (B == 8) asm("" : "+v"(v));
#endif
#if defined(__AVX512F__)
  if constexpr (B == 16) asm("" : "+v"(v));
#endif
  (void)v;
}

bool winoShapesOk(int64_t m, int64_t block, int64_t c, int64_t k, int64_t h, int64_t w) {
  return (m == 2 || m == 4) && (block == 8 || block == 16) && c > 0 && k > 0 && h > 0 && w > 0 &&
         c % block == 0 && k % block == 0 && h % m == 0 && w % m == 0;
}

// ---- The transforms, one axis at a time (the second axis applies the same to the first's results) ----

// B^T d of one input column (m + 2 values).
template <int M, typename V>
static inline void bt(const V* d, V* e) {
  if constexpr (M == 2) {  // B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    e[0] = d[0] - d[2];
    e[1] = d[1] + d[2];
    e[2] = d[2] - d[1];
    e[3] = d[1] - d[3];
  } else {  // B^T = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
            //        [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
    const V p = d[4] - d[2], q = d[3] - d[1];
    e[0] = 4.f * (d[0] - d[2]) + p;
    e[1] = (d[3] + d[4]) - 4.f * (d[1] + d[2]);
    e[2] = (d[4] - d[3]) + 4.f * (d[1] - d[2]);
    e[3] = p + 2.f * q;
    e[4] = p - 2.f * q;
    e[5] = 4.f * (d[1] - d[3]) + (d[5] - d[3]);
  }
}

// A^T m of one column of products (m + 2 values -> m).
template <int M, typename V>
static inline void at(const V* p, V* o) {
  if constexpr (M == 2) {  // A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]
    o[0] = p[0] + p[1] + p[2];
    o[1] = p[1] - p[2] - p[3];
  } else {  // A^T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
    const V a = p[1] + p[2], b = p[1] - p[2], c = p[3] + p[4], d = p[3] - p[4];
    o[0] = p[0] + a + c;
    o[1] = b + 2.f * d;
    o[2] = a + 4.f * c;
    o[3] = b + 8.f * d + p[5];
  }
}

// G g of one filter column (3 values -> m + 2), 16 filters at a time.
template <int M>
static inline void gt(const V16* g, V16* u) {
  if constexpr (M == 2) {  // G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    u[0] = g[0];
    u[1] = 0.5f * (g[0] + g[1] + g[2]);
    u[2] = 0.5f * (g[0] - g[1] + g[2]);
    u[3] = g[2];
  } else {  // G = [[1/4, 0, 0], [-1/6, -1/6, -1/6], [-1/6, 1/6, -1/6], [1/24, 1/12, 1/6], [1/24, -1/12, 1/6], [0, 0, 1]]
    const V16 ac = g[0] + g[2], a4c = g[0] * (1.f / 24) + g[2] * (1.f / 6), b12 = g[1] * (1.f / 12);
    u[0] = 0.25f * g[0];
    u[1] = (ac + g[1]) * (-1.f / 6);
    u[2] = (ac - g[1]) * (-1.f / 6);
    u[3] = a4c + b12;
    u[4] = a4c - b12;
    u[5] = g[2];
  }
}

// A e of one column of an output gradient's tile (m values -> m + 2): the weight gradient's "filter" transform.
template <int M, typename V>
static inline void ae(const V* e, V* a) {
  if constexpr (M == 2) {  // A = [[1, 0], [1, 1], [1, -1], [0, -1]]
    a[0] = e[0];
    a[1] = e[0] + e[1];
    a[2] = e[0] - e[1];
    a[3] = -e[1];
  } else {  // A = A^T of F(4x4, 3x3), transposed: rows (1, 0, 0, 0), (1, 1, 1, 1), (1, -1, 1, -1), (1, 2, 4, 8),
            // (1, -2, 4, -8), (0, 0, 0, 1)
    const V ev = e[0] + e[2], od = e[1] + e[3], ev4 = e[0] + 4.f * e[2], od4 = 2.f * e[1] + 8.f * e[3];
    a[0] = e[0];
    a[1] = ev + od;
    a[2] = ev - od;
    a[3] = ev4 + od4;
    a[4] = ev4 - od4;
    a[5] = e[3];
  }
}

// G^T s of one column of summed products (m + 2 values -> 3): the weight gradient's output transform.
template <int M, typename V>
static inline void gtT(const V* s, V* o) {
  if constexpr (M == 2) {  // G^T = [[1, 1/2, 1/2, 0], [0, 1/2, -1/2, 0], [0, 1/2, 1/2, 1]]
    const V p = 0.5f * (s[1] + s[2]);
    o[0] = s[0] + p;
    o[1] = 0.5f * (s[1] - s[2]);
    o[2] = p + s[3];
  } else {  // G^T = [[1/4, -1/6, -1/6, 1/24, 1/24, 0], [0, -1/6, 1/6, 1/12, -1/12, 0], [0, -1/6, -1/6, 1/6, 1/6, 1]]
    const V a = s[1] + s[2], c = s[3] + s[4];
    o[0] = 0.25f * s[0] - a * (1.f / 6) + c * (1.f / 24);
    o[1] = (s[2] - s[1]) * (1.f / 6) + (s[3] - s[4]) * (1.f / 12);
    o[2] = (c - a) * (1.f / 6) + s[5];
  }
}

// The distance in floats between the positions' matrices of T rows of n floats: rounded up to 4 KB and one
// cache line more, so that a transform's stores per tile and channel block fall in different L1 sets (T n
// floats a multiple of 4 KB put all of them in one set of 12 ways).
static inline int64_t posStride(int64_t T, int64_t n) { return (T * n + 1023) / 1024 * 1024 + 16; }

// V [P][T][C] (positions posStride(T, C) apart) of tiles p0 .. p0 + T of x [N, C/B, H, W, B] (tile p: image
// p / tiles, then row by row): d -> B^T d B; one block of B channels per vector. BF: V in bfloat16 (rounded to
// nearest even), each row C halves, positions posStride(T, C / 2) floats apart.
template <int M, int B, bool BF = false>
static void inputTransform(const float* x, int64_t C, int64_t H, int64_t W, int64_t p0, int64_t T, float* Vb) {
  constexpr int A = M + 2;
  using V = Vec<B>;
  const int64_t tw = W / M, tiles = (H / M) * tw, xs = posStride(T, BF ? C / 2 : C);
  for (int64_t t = 0; t < T; t++) {
    const int64_t n = (p0 + t) / tiles, ty = (p0 + t) % tiles / tw, tx = (p0 + t) % tw;
    const int64_t y0 = M * ty - 1, x0 = M * tx - 1;
    const bool inside = y0 >= 0 && x0 >= 0 && y0 + A <= H && x0 + A <= W;
    for (int64_t cb = 0; cb < C / B; cb++) {
      const float* xc = x + (n * C / B + cb) * H * W * B;
      V e[A][A];  // B^T d, column by column
      for (int k = 0; k < A; k++) {
        V d[A];
        for (int i = 0; i < A; i++) {
          const int64_t hy = y0 + i, wx = x0 + k;
          d[i] = inside || (hy >= 0 && hy < H && wx >= 0 && wx < W) ? ld<B>(xc + (hy * W + wx) * B) : V{};
        }
        V c[A];
        bt<M>(d, c);
        for (int i = 0; i < A; i++) e[i][k] = c[i];
      }
      for (int i = 0; i < A; i++) {
        V v[A];
        bt<M>(e[i], v);
        if constexpr (BF) {
#if defined(__AVX512BF16__)
          for (int k = 0; k < A; k++) {
            auto* out = reinterpret_cast<uint16_t*>(Vb + (i * A + k) * xs) + t * C + cb * B;
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), (__m256i)_mm512_cvtneps_pbh(__m512(v[k])));
          }
#endif
        } else {
          float* out = Vb + i * A * xs + t * C + cb * B;
          for (int k = 0; k < A; k++) st<B>(out + k * xs, v[k]);
        }
      }
    }
  }
}

int64_t winoUnits(WinoJob& j) {
  const int64_t tiles = (j.h / j.m) * (j.w / j.m), P = winoPositions(j.m);
  // V [P][tiles][C] and M [P][tiles][K] of one chunk within about 512 KB.
  const int64_t fit = std::max<int64_t>(6, (512 * 1024 / 4) / (P * (j.c + j.k)));
  // At least 8 units where a small batch has the tiles for them (6 or more a chunk), so every thread has work.
  const int64_t chunks = std::max((tiles + fit - 1) / fit, std::min(tiles / 6, (8 + j.n - 1) / j.n));
  j.tilesPerUnit = (tiles + chunks - 1) / chunks;
  return j.n * chunks;
}

// The products of both directions as one register tile: c[r][v] (+)= sum over q < Q of a[r ar + q aq] times
// the vector b[q bq + v B ..], for R rows and NV vectors of B lanes, each a value broadcast once for its NV
// uses. `accumulate`: start from c, else from zero. R x NV accumulators: up to 24 of 32 registers (AVX-512),
// 12 of 16 (AVX2).
template <int R, int NV, int B, bool accumulate>
__attribute__((noinline)) static void outerTile(const float* a, int64_t ar, int64_t aq, const float* b, int64_t bq,
                                                int64_t Q, float* c, int64_t cr) {
  using W = Vec<B>;
  W acc[R][NV];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NV; v++) acc[r][v] = accumulate ? ld<B>(c + r * cr + v * B) : W{};
  for (int64_t q = 0; q < Q; q++) {
    W u[NV];
    for (int v = 0; v < NV; v++) u[v] = ld<B>(b + q * bq + v * B);
    for (int r = 0; r < R; r++) {
      W s = splat<W>(a[r * ar + q * aq]);
      keep<B>(s);
      for (int v = 0; v < NV; v++) acc[r][v] += s * u[v];
    }
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NV; v++) st<B>(c + r * cr + v * B, acc[r][v]);
}

// M[t][k0 ..] (NV vectors of B output channels) = sum over c < C of V[t][c] U[c][k0 ..], rows t < R: 6 x 4
// vectors (AVX-512) or 6 x 2 (AVX2).
template <int R, int NV, int B>
static void tile(const float* V, int64_t C, const float* U, int64_t K, float* M) {
  outerTile<R, NV, B, false>(V, C, 1, U, K, C, M, K);
}

template <int R, int B>
static void rows(const float* V, int64_t C, const float* U, int64_t K, float* M) {
  constexpr int NV = B == 16 ? 4 : 2;
  int64_t k0 = 0;
  for (; k0 + NV * B <= K; k0 += NV * B) tile<R, NV, B>(V, C, U + k0, K, M + k0);
  if (NV == 4 && k0 + 2 * B <= K) tile<R, 2, B>(V, C, U + k0, K, M + k0), k0 += 2 * B;
  for (; k0 < K; k0 += B) tile<R, 1, B>(V, C, U + k0, K, M + k0);
}

#if defined(__AVX512BF16__)
// The bfloat16 form of tile: M[t][k0 ..] = sum over pairs q < C / 2 of V[t][2q, 2q + 1] . U[q][k0 ..][2], each
// word of V (two channels) broadcast and multiplied with NV vectors of 16 filter pairs by one dot-product
// instruction (VDPBF16PS: two products per lane, summed in float32), half the float32 tile's instructions.
template <int R, int NV>
__attribute__((noinline)) static void tileBf16(const uint32_t* a, int64_t ar, const uint32_t* b, int64_t bq,
                                               int64_t Q, float* c, int64_t cr) {
  __m512 acc[R][NV];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
  for (int64_t q = 0; q < Q; q++) {
    __m512bh u[NV];
    for (int v = 0; v < NV; v++) u[v] = (__m512bh)_mm512_loadu_si512(b + q * bq + v * 16);
    for (int r = 0; r < R; r++) {
      const __m512bh s = (__m512bh)_mm512_set1_epi32(int(a[r * ar + q]));
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], s, u[v]);
    }
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NV; v++) _mm512_storeu_ps(c + r * cr + v * 16, acc[r][v]);
}

template <int R>
static void rowsBf16(const uint32_t* V, int64_t C, const uint32_t* U, int64_t K, float* M) {
  int64_t k0 = 0;
  for (; k0 + 64 <= K; k0 += 64) tileBf16<R, 4>(V, C / 2, U + k0, K, C / 2, M + k0, K);
  if (k0 + 32 <= K) tileBf16<R, 2>(V, C / 2, U + k0, K, C / 2, M + k0, K), k0 += 32;
  for (; k0 < K; k0 += 16) tileBf16<R, 1>(V, C / 2, U + k0, K, C / 2, M + k0, K);
}
bool winoBf16() { return true; }
#else
bool winoBf16() { return false; }
#endif

// out[i * (m + 2) + j] = (G g G^T)[i][j] of 16 3x3 filters g (lane l: tap t of filter l in g[t]).
template <int M>
static inline void filterTransform(const V16* g, V16* out) {
  constexpr int A = M + 2;
  V16 t[A][3];
  for (int s = 0; s < 3; s++) {  // G g, column by column
    const V16 col[3] = {g[s], g[3 + s], g[6 + s]};
    V16 u[A];
    gt<M>(col, u);
    for (int i = 0; i < A; i++) t[i][s] = u[i];
  }
  for (int i = 0; i < A; i++) gt<M>(t[i], out + i * A);  // (G g) G^T, row by row
}

int64_t winoFilterUnits(int64_t k, int64_t, bool flip) { return flip ? k : (k + 15) / 16; }

// u [P, C, K]: unit b = 16 output channels k0 .. k0 + 16 (the lanes), each (xi, c) row's 16 written at once.
// Flip, u [P, K, C] of w's filters flipped and transposed: unit b = row b of w, 16 input channels (the lanes) at
// a time. The lanes' 9 taps are gathered through a small transposed buffer.
template <int M>
static void filterUnit(const float* w, int64_t K, int64_t C, bool flip, int64_t b, float* u) {
  constexpr int P = (M + 2) * (M + 2);
  const int64_t outer = flip ? (C + 15) / 16 : C;
  alignas(64) float g[9][16], o[P][16];
  for (int64_t q = 0; q < outer; q++) {
    const int64_t l0 = flip ? q * 16 : b * 16, lanes = std::min<int64_t>(16, (flip ? C : K) - l0);
    for (int l = 0; l < 16; l++) {
      const float* f = l < lanes ? (flip ? w + (b * C + l0 + l) * 9 : w + ((l0 + l) * C + q) * 9) : nullptr;
      for (int t = 0; t < 9; t++) g[t][l] = f ? f[flip ? 8 - t : t] : 0.f;
    }
    V16 gv[9], ov[P];
    for (int t = 0; t < 9; t++) gv[t] = ld<16>(g[t]);
    filterTransform<M>(gv, ov);
    for (int xi = 0; xi < P; xi++) {
      float* dst = flip ? u + (xi * K + b) * C + l0 : u + (xi * C + q) * K + l0;
      if (lanes == 16) {
        st<16>(dst, ov[xi]);
        continue;
      }
      st<16>(o[xi], ov[xi]);
      std::copy(o[xi], o[xi] + lanes, dst);
    }
  }
}

void winoFilterUnit(int64_t m, const float* w, int64_t K, int64_t C, bool flip, int64_t b, float* u) {
  if (m == 4) return filterUnit<4>(w, K, C, flip, b, u);
  filterUnit<2>(w, K, C, flip, b, u);
}

template <int M, int B, bool BF = false>
static void unit(const WinoJob& j, int64_t u) {
  constexpr int A = M + 2, P = A * A;
  using V = Vec<B>;
  const int64_t H = j.h, W = j.w, C = j.c, K = j.k, tw = W / M, tiles = (H / M) * tw;
  const int64_t chunks = (tiles + j.tilesPerUnit - 1) / j.tilesPerUnit;
  const int64_t n = u / chunks, t0 = u % chunks * j.tilesPerUnit, T = std::min(j.tilesPerUnit, tiles - t0);
  if (T <= 0) return;
  const int64_t vs = posStride(T, BF ? C / 2 : C), ms = posStride(T, K);
  float* Vb = threadScratch(P * (vs + ms));  // V [P][T][C] (BF: bfloat16), then M [P][T][K]
  float* Mb = Vb + P * vs;
  inputTransform<M, B, BF>(j.x, C, H, W, n * tiles + t0, T, Vb);
  // M_xi [T][K] = V_xi [T][C] U_xi [C][K], for the P positions xi of the transformed tile.
  for (int xi = 0; xi < P; xi++) {
    float* Mx = Mb + xi * ms;
    int64_t t = 0;
    if constexpr (BF) {
#if defined(__AVX512BF16__)
      const auto* Vx = reinterpret_cast<const uint32_t*>(Vb + xi * vs);
      const uint32_t* U = j.ub + xi * (C / 2) * K;
      for (; t + 6 <= T; t += 6) rowsBf16<6>(Vx + t * C / 2, C, U, K, Mx + t * K);
      for (; t + 2 <= T; t += 2) rowsBf16<2>(Vx + t * C / 2, C, U, K, Mx + t * K);
      if (t < T) rowsBf16<1>(Vx + t * C / 2, C, U, K, Mx + t * K);
#endif
    } else {
      const float* Vx = Vb + xi * vs;
      const float* U = j.u + xi * C * K;
      for (; t + 6 <= T; t += 6) rows<6, B>(Vx + t * C, C, U, K, Mx + t * K);
      for (; t + 2 <= T; t += 2) rows<2, B>(Vx + t * C, C, U, K, Mx + t * K);
      if (t < T) rows<1, B>(Vx + t * C, C, U, K, Mx + t * K);
    }
  }
  // y = A^T m A + bias (+ sum)
  float* y = j.y + n * K * H * W;
  const float* s = j.sum ? j.sum + n * K * H * W : nullptr;
  for (int64_t kb = 0; kb < K / B; kb++) {
    const V b = ld<B>(j.bias + kb * B);
    for (int64_t t = 0; t < T; t++) {
      const int64_t ty = (t0 + t) / tw, tx = (t0 + t) % tw;
      V r[M][A];  // A^T m, column by column
      for (int k = 0; k < A; k++) {
        V p[A], o[M];
        for (int i = 0; i < A; i++) p[i] = ld<B>(Mb + (i * A + k) * ms + t * K + kb * B);
        at<M>(p, o);
        for (int i = 0; i < M; i++) r[i][k] = o[i];
      }
      for (int i = 0; i < M; i++) {
        V o[M];
        at<M>(r[i], o);
        const int64_t row = ((kb * H + M * ty + i) * W + M * tx) * B;
        for (int q = 0; q < M; q++) st<B>(y + row + q * B, s ? o[q] + b + ld<B>(s + row + q * B) : o[q] + b);
      }
    }
  }
}

void winoUnit(const WinoJob& j, int64_t u) {
#if defined(__AVX512BF16__)
  if (!j.u) return j.m == 4 ? unit<4, 16, true>(j, u) : unit<2, 16, true>(j, u);
#endif
  if (j.block == 8) return j.m == 4 ? unit<4, 8>(j, u) : unit<2, 8>(j, u);
  if (j.m == 4) return unit<4, 16>(j, u);
  unit<2, 16>(j, u);
}

// ---- The weight gradient: Winograd F(3x3, m x m) ----
// dw[k, c, i, j] = sum over images and positions (y, x) of dy[k, y, x] x[c, y + i - 1, x + j - 1]. Split the
// positions into the forward pass's m x m tiles: tile (ty, tx)'s output gradient e (m x m) and its input tile d
// ((m + 2) x (m + 2), rows m ty - 1 .. m ty + m) add e correlated with d to each 3x3 filter, F(3, m) in each
// axis: the transpose of F(m, 3), out = G^T [(A e) . (B^T d)], with the forward pass's A, B and G. The
// products are summed over the tiles before the output transform: S_xi [K][C] = sum over tiles of
// E_xi [t][K]^T V_xi [t][C], then dw[k, c] = G^T S[k, c] G. A range of the batch's tiles per thread, each with
// its own S.

void winoGradPlan(WinoGradJob& j, int64_t threads) {
  const int64_t tiles = j.n * (j.h / j.m) * (j.w / j.m);
  j.ranges = std::clamp<int64_t>(std::min(threads, tiles / 64), 1, 8);
  // A chunk's E and V (P positions) within about 512 KB of L2.
  j.tilesPerChunk = std::clamp<int64_t>(131072 / (winoPositions(j.m) * (j.c + j.k)), 16, 256);
}

// E [P][T][K] (positions posStride(T, K) apart) of the output gradient's tiles p0 .. p0 + T: e -> A e A^T.
template <int M, int B>
static void gradTransform(const float* dy, int64_t K, int64_t H, int64_t W, int64_t p0, int64_t T, float* Eb) {
  constexpr int A = M + 2;
  using V = Vec<B>;
  const int64_t tw = W / M, tiles = (H / M) * tw, xs = posStride(T, K);
  for (int64_t t = 0; t < T; t++) {
    const int64_t n = (p0 + t) / tiles, ty = (p0 + t) % tiles / tw, tx = (p0 + t) % tw;
    for (int64_t kb = 0; kb < K / B; kb++) {
      const float* e = dy + ((n * K / B + kb) * H * W + M * ty * W + M * tx) * B;
      V a[A][M];  // A e, column by column
      for (int k = 0; k < M; k++) {
        V col[M], c[A];
        for (int i = 0; i < M; i++) col[i] = ld<B>(e + (i * W + k) * B);
        ae<M>(col, c);
        for (int i = 0; i < A; i++) a[i][k] = c[i];
      }
      for (int i = 0; i < A; i++) {
        V v[A];
        ae<M>(a[i], v);
        float* out = Eb + i * A * xs + t * K + kb * B;
        for (int k = 0; k < A; k++) st<B>(out + k * xs, v[k]);
      }
    }
  }
}

// The rows of K a gradient tile takes: 8 x 3 vectors of 32 registers (AVX-512), 4 x 3 of 16 (AVX2).
template <int B>
inline constexpr int kGradRows = B == 16 ? 8 : 4;

// S[k0 + r][c0 ..] (NV vectors of B input channels) += sum over t < T of E[t][k0 + r] V[t][c0 ..].
template <int NV, int B>
static void gradTile(const float* E, int64_t K, const float* V, int64_t C, int64_t T, float* S) {
  outerTile<kGradRows<B>, NV, B, true>(E, 1, K, V, C, T, S, C);
}

template <int M, int B>
static void gradRange(const WinoGradJob& j, int64_t r) {
  constexpr int P = (M + 2) * (M + 2), R = kGradRows<B>;
  const int64_t C = j.c, K = j.k, tiles = j.n * (j.h / M) * (j.w / M);
  const int64_t p0 = tiles * r / j.ranges, p1 = tiles * (r + 1) / j.ranges;
  float* S = j.s + r * P * K * C;  // [P][K][C]
  std::fill(S, S + P * K * C, 0.f);
  const int64_t T0 = j.tilesPerChunk;
  float* Eb = threadScratch(P * (posStride(T0, K) + posStride(T0, C)));  // E [P][T][K], then V [P][T][C]
  for (int64_t q = p0; q < p1; q += T0) {
    const int64_t T = std::min(T0, p1 - q);
    const int64_t es = posStride(T, K), vs = posStride(T, C);
    float* Vb = Eb + P * es;
    gradTransform<M, B>(j.dy, K, j.h, j.w, q, T, Eb);
    inputTransform<M, B>(j.x, C, j.h, j.w, q, T, Vb);
    for (int xi = 0; xi < P; xi++) {
      const float* E = Eb + xi * es;
      const float* V = Vb + xi * vs;
      float* Sx = S + xi * K * C;
      const int64_t dv = C / B;
      for (int64_t k0 = 0; k0 < K; k0 += R) {  // K is a multiple of B, so of R
        int64_t v = 0;
        // 4 vectors as two tiles of 2, not 3 and a 1-vector tail (a load per multiply-add there)
        if (dv != 4)
          for (; v + 3 <= dv; v += 3) gradTile<3, B>(E + k0, K, V + v * B, C, T, Sx + k0 * C + v * B);
        for (; v + 2 <= dv; v += 2) gradTile<2, B>(E + k0, K, V + v * B, C, T, Sx + k0 * C + v * B);
        for (; v < dv; v++) gradTile<1, B>(E + k0, K, V + v * B, C, T, Sx + k0 * C + v * B);
      }
    }
  }
}

void winoGradRange(const WinoGradJob& j, int64_t r) {
  if (j.block == 8) return j.m == 4 ? gradRange<4, 8>(j, r) : gradRange<2, 8>(j, r);
  if (j.m == 4) return gradRange<4, 16>(j, r);
  gradRange<2, 16>(j, r);
}

// dw[k, c] = G^T S[k, c] G (S summed over the ranges), B input channels at a time.
template <int M, int B>
static void gradOutput(const WinoGradJob& j, int64_t k) {
  constexpr int A = M + 2, P = A * A;
  using V = Vec<B>;
  const int64_t C = j.c, K = j.k;
  for (int64_t c0 = 0; c0 < C; c0 += B) {
    V s[P];
    for (int xi = 0; xi < P; xi++) {
      s[xi] = ld<B>(j.s + (xi * K + k) * C + c0);
      for (int64_t r = 1; r < j.ranges; r++) s[xi] += ld<B>(j.s + ((r * P + xi) * K + k) * C + c0);
    }
    V t[3][A];  // G^T s, column by column
    for (int b = 0; b < A; b++) {
      V col[A], o[3];
      for (int a = 0; a < A; a++) col[a] = s[a * A + b];
      gtT<M>(col, o);
      for (int i = 0; i < 3; i++) t[i][b] = o[i];
    }
    alignas(64) float o9[9][B];  // (G^T s) G, tap i * 3 + j
    for (int i = 0; i < 3; i++) {
      V o[3];
      gtT<M>(t[i], o);
      for (int q = 0; q < 3; q++) st<B>(o9[i * 3 + q], o[q]);
    }
    float* dst = j.dw + (k * C + c0) * 9;  // B input channels' 9 taps, contiguous
    for (int l = 0; l < B; l++)
      for (int q = 0; q < 9; q++) dst[l * 9 + q] = o9[q][l];
  }
}

void winoGradOutput(const WinoGradJob& j, int64_t k) {
  if (j.block == 8) return j.m == 4 ? gradOutput<4, 8>(j, k) : gradOutput<2, 8>(j, k);
  if (j.m == 4) return gradOutput<4, 16>(j, k);
  gradOutput<2, 16>(j, k);
}
