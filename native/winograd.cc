// Winograd F(2x2, 3x3) (Lavin & Gray 2016) for the U-Net's 3x3 convolutions (Ho et al. 2020 appendix B: every
// ResNet block's two), on ONNX Runtime's NCHW16c blocked layout. Each 2x2 output tile is made from its 4x4
// input tile: d -> B^T d B (16 values per input channel), 16 products M_xi = V_xi U_xi over the channels (U =
// G g G^T of each filter, transformed once when the graph is built), then A^T m A plus the bias. 16 products
// per channel pair instead of the direct convolution's 36: 2.25x fewer multiplies, at the price of the
// transforms (adds only). A unit of work is a chunk of one image's tiles, sized so its transformed tiles stay
// in a core's L2 cache. The GEMMs are register tiles of 6 tiles x up to 4 vectors of 16 output channels.
#include "winograd.h"

#include <algorithm>

#include "simd.h"

typedef float V16 __attribute__((vector_size(64)));
typedef float V16U __attribute__((vector_size(64), aligned(4)));
static inline V16 ld(const float* p) { return *reinterpret_cast<const V16U*>(p); }
static inline void st(float* p, V16 v) { *reinterpret_cast<V16U*>(p) = v; }

bool winoShapesOk(int64_t c, int64_t k, int64_t h, int64_t w) {
  return c > 0 && k > 0 && h > 0 && w > 0 && c % 16 == 0 && k % 16 == 0 && h % 2 == 0 && w % 2 == 0;
}

int64_t winoUnits(WinoJob& j) {
  const int64_t tiles = (j.h / 2) * (j.w / 2);
  // V [16][tiles][C] and M [16][tiles][K] of one chunk within about 512 KB.
  const int64_t fit = std::max<int64_t>(6, (512 * 1024 / 4) / (16 * (j.c + j.k)));
  // At least 8 units where a small batch has the tiles for them (6 or more a chunk), so every thread has work.
  const int64_t chunks = std::max((tiles + fit - 1) / fit, std::min(tiles / 6, (8 + j.n - 1) / j.n));
  j.tilesPerUnit = (tiles + chunks - 1) / chunks;
  return j.n * chunks;
}

// M[t][k0 ..] (NV vectors of 16 output channels) = sum over c < C of V[t][c] U[c][k0 ..], rows t < R.
template <int R, int NV>
__attribute__((noinline)) static void tile(const float* V, int64_t C, const float* U, int64_t K, float* M) {
  V16 acc[R][NV];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NV; v++) acc[r][v] = V16{};
  for (int64_t c = 0; c < C; c++) {
    V16 u[NV];
    for (int v = 0; v < NV; v++) u[v] = ld(U + c * K + v * 16);
    for (int r = 0; r < R; r++) {
      V16 b = splat<V16>(V[r * C + c]);
#if defined(__AVX512F__)
      asm("" : "+v"(b));  // one broadcast per row value (a 16-float register only with AVX-512)
#endif
      for (int v = 0; v < NV; v++) acc[r][v] += b * u[v];
    }
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NV; v++) st(M + r * K + v * 16, acc[r][v]);
}

template <int R>
static void rows(const float* V, int64_t C, const float* U, int64_t K, float* M) {
  int64_t k0 = 0;
  for (; k0 + 64 <= K; k0 += 64) tile<R, 4>(V, C, U + k0, K, M + k0);
  if (k0 + 32 <= K) tile<R, 2>(V, C, U + k0, K, M + k0), k0 += 32;
  if (k0 < K) tile<R, 1>(V, C, U + k0, K, M + k0);
}

// out[i * 4 + j] = (G g G^T)[i][j] of one 3x3 filter g, flipped in both axes first when flip;
// G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]].
static inline void filterTransform(const float* g9, bool flip, float out[16]) {
  float g[9];
  for (int i = 0; i < 9; i++) g[i] = flip ? g9[8 - i] : g9[i];
  float t[4][3];  // G g
  for (int s = 0; s < 3; s++) {
    t[0][s] = g[s];
    t[1][s] = 0.5f * (g[s] + g[3 + s] + g[6 + s]);
    t[2][s] = 0.5f * (g[s] - g[3 + s] + g[6 + s]);
    t[3][s] = g[6 + s];
  }
  for (int i = 0; i < 4; i++) {  // (G g) G^T
    out[i * 4 + 0] = t[i][0];
    out[i * 4 + 1] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
    out[i * 4 + 2] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
    out[i * 4 + 3] = t[i][2];
  }
}

int64_t winoFilterUnits(int64_t k, int64_t, bool flip) { return flip ? k : (k + 15) / 16; }

void winoFilterUnit(const float* w, int64_t K, int64_t C, bool flip, int64_t b, float* u) {
  float v[16];
  if (flip) {  // row b of w: u [16, K, C] at (xi, b, c), written along c
    for (int64_t c = 0; c < C; c++) {
      filterTransform(w + (b * C + c) * 9, true, v);
      for (int xi = 0; xi < 16; xi++) u[(xi * K + b) * C + c] = v[xi];
    }
    return;
  }
  // 16 output channels k0 .. k1 of w: u [16, C, K] at (xi, c, k), each (xi, c) row's k0 .. k1 written at once
  const int64_t k0 = b * 16, k1 = std::min(K, k0 + 16);
  float tile[16][16];
  for (int64_t c = 0; c < C; c++) {
    for (int64_t k = k0; k < k1; k++) {
      filterTransform(w + (k * C + c) * 9, false, v);
      for (int xi = 0; xi < 16; xi++) tile[xi][k - k0] = v[xi];
    }
    for (int xi = 0; xi < 16; xi++) std::copy(tile[xi], tile[xi] + (k1 - k0), u + (xi * C + c) * K + k0);
  }
}

// The distance in floats between the 16 positions' matrices of T rows of n floats: rounded up to 4 KB and one
// cache line more, so that the transforms' 16 stores per tile and channel block fall in different L1 sets (T n
// floats a multiple of 4 KB put all 16 in one set: 12 ways).
static inline int64_t posStride(int64_t T, int64_t n) { return (T * n + 1023) / 1024 * 1024 + 16; }

// V [16][T][C] (positions posStride(T, C) apart) of tiles p0 .. p0 + T of x [N, C/16, H, W, 16] (tile p: image p / tiles, then row by row):
// d -> B^T d B, B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]; 16 channels per vector.
static void inputTransform(const float* x, int64_t C, int64_t H, int64_t W, int64_t p0, int64_t T, float* Vb) {
  const int64_t tw = W / 2, tiles = (H / 2) * tw, xs = posStride(T, C);
  for (int64_t t = 0; t < T; t++) {
    const int64_t n = (p0 + t) / tiles, ty = (p0 + t) % tiles / tw, tx = (p0 + t) % tw;
    for (int64_t cb = 0; cb < C / 16; cb++) {
      const float* xc = x + (n * C / 16 + cb) * H * W * 16;
      V16 d[4][4];
      for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) {
          const int64_t hy = 2 * ty - 1 + i, wx = 2 * tx - 1 + k;
          d[i][k] = (hy < 0 || hy >= H || wx < 0 || wx >= W) ? V16{} : ld(xc + (hy * W + wx) * 16);
        }
      V16 e[4][4];
      for (int k = 0; k < 4; k++) {
        e[0][k] = d[0][k] - d[2][k];
        e[1][k] = d[1][k] + d[2][k];
        e[2][k] = d[2][k] - d[1][k];
        e[3][k] = d[1][k] - d[3][k];
      }
      for (int i = 0; i < 4; i++) {
        float* v = Vb + i * 4 * xs + t * C + cb * 16;
        st(v, e[i][0] - e[i][2]);
        st(v + xs, e[i][1] + e[i][2]);
        st(v + 2 * xs, e[i][2] - e[i][1]);
        st(v + 3 * xs, e[i][1] - e[i][3]);
      }
    }
  }
}

void winoUnit(const WinoJob& j, int64_t u) {
  const int64_t H = j.h, W = j.w, C = j.c, K = j.k, tw = W / 2, tiles = (H / 2) * tw;
  const int64_t chunks = (tiles + j.tilesPerUnit - 1) / j.tilesPerUnit;
  const int64_t n = u / chunks, t0 = u % chunks * j.tilesPerUnit, T = std::min(j.tilesPerUnit, tiles - t0);
  if (T <= 0) return;
  const int64_t vs = posStride(T, C), ms = posStride(T, K);
  float* Vb = threadScratch(16 * (vs + ms));  // V [16][T][C], then M [16][T][K]
  float* Mb = Vb + 16 * vs;
  inputTransform(j.x, C, H, W, n * tiles + t0, T, Vb);
  // M_xi [T][K] = V_xi [T][C] U_xi [C][K], for the 16 positions xi of the transformed tile.
  for (int xi = 0; xi < 16; xi++) {
    const float* V = Vb + xi * vs;
    const float* U = j.u + xi * C * K;
    float* M = Mb + xi * ms;
    int64_t t = 0;
    for (; t + 6 <= T; t += 6) rows<6>(V + t * C, C, U, K, M + t * K);
    for (; t + 2 <= T; t += 2) rows<2>(V + t * C, C, U, K, M + t * K);
    if (t < T) rows<1>(V + t * C, C, U, K, M + t * K);
  }
  // y = A^T m A + bias (+ sum), A^T = [[1, 1, 1, 0], [0, 1, -1, -1]].
  float* y = j.y + n * K * H * W;
  const float* s = j.sum ? j.sum + n * K * H * W : nullptr;
  for (int64_t kb = 0; kb < K / 16; kb++) {
    const V16 b = ld(j.bias + kb * 16);
    for (int64_t t = 0; t < T; t++) {
      const int64_t ty = (t0 + t) / tw, tx = (t0 + t) % tw;
      V16 m[4][4];
      for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) m[i][k] = ld(Mb + (i * 4 + k) * ms + t * K + kb * 16);
      V16 r0[4], r1[4];
      for (int k = 0; k < 4; k++) r0[k] = m[0][k] + m[1][k] + m[2][k], r1[k] = m[1][k] - m[2][k] - m[3][k];
      V16 o[4] = {r0[0] + r0[1] + r0[2] + b, r0[1] - r0[2] - r0[3] + b, r1[0] + r1[1] + r1[2] + b,
                  r1[1] - r1[2] - r1[3] + b};
      const int64_t at[4] = {((kb * H + 2 * ty) * W + 2 * tx) * 16, ((kb * H + 2 * ty) * W + 2 * tx + 1) * 16,
                             ((kb * H + 2 * ty + 1) * W + 2 * tx) * 16, ((kb * H + 2 * ty + 1) * W + 2 * tx + 1) * 16};
      for (int q = 0; q < 4; q++) st(y + at[q], s ? o[q] + ld(s + at[q]) : o[q]);
    }
  }
}

// ---- The weight gradient: Winograd F(3x3, 2x2) ----
// dw[k, c, i, j] = sum over images and positions (y, x) of dy[k, y, x] x[c, y + i - 1, x + j - 1]. Split the
// positions into the forward pass's 2x2 tiles: tile (ty, tx)'s output gradient e (2x2) and its input tile d
// (4x4, rows 2 ty - 1 .. 2 ty + 2) add e correlated with d to each 3x3 filter, F(3, 2) in each axis: the
// transpose of F(2, 3), out = G^T [(A e) . (B^T d)], with the forward pass's A, B and G. The products are
// summed over the tiles before the output transform: S_xi [K][C] = sum over tiles of E_xi [t][K]^T V_xi [t][C],
// then dw[k, c] = G^T S[k, c] G. A range of the batch's tiles per thread, each with its own S.

void winoGradPlan(WinoGradJob& j, int64_t threads) {
  const int64_t P = j.n * (j.h / 2) * (j.w / 2);
  j.ranges = std::clamp<int64_t>(std::min(threads, P / 64), 1, 8);
  // A chunk's E and V (16 positions) within about 512 KB of L2: 32 KB per position for the products.
  j.tilesPerChunk = std::clamp<int64_t>(8192 / (j.c + j.k), 16, 256);
}

// E [16][T][K] (positions posStride(T, K) apart) of the output gradient's tiles p0 .. p0 + T: e -> A e A^T, A = [[1, 0], [1, 1], [1, -1], [0, -1]].
static void gradTransform(const float* dy, int64_t K, int64_t H, int64_t W, int64_t p0, int64_t T, float* Eb) {
  const int64_t tw = W / 2, tiles = (H / 2) * tw, xs = posStride(T, K);
  for (int64_t t = 0; t < T; t++) {
    const int64_t n = (p0 + t) / tiles, ty = (p0 + t) % tiles / tw, tx = (p0 + t) % tw;
    for (int64_t kb = 0; kb < K / 16; kb++) {
      const float* e = dy + ((n * K / 16 + kb) * H * W + 2 * ty * W + 2 * tx) * 16;
      const V16 e00 = ld(e), e01 = ld(e + 16), e10 = ld(e + W * 16), e11 = ld(e + W * 16 + 16);
      const V16 a[4][2] = {{e00, e01}, {e00 + e10, e01 + e11}, {e00 - e10, e01 - e11}, {-e10, -e11}};
      for (int i = 0; i < 4; i++) {
        float* v = Eb + i * 4 * xs + t * K + kb * 16;
        st(v, a[i][0]);
        st(v + xs, a[i][0] + a[i][1]);
        st(v + 2 * xs, a[i][0] - a[i][1]);
        st(v + 3 * xs, -a[i][1]);
      }
    }
  }
}

// S[k0 + r][c0 ..] (NV vectors of 16 input channels) += sum over t < T of E[t][k0 + r] V[t][c0 ..], r < 8.
template <int NV>
__attribute__((noinline)) static void gradTile(const float* E, int64_t K, const float* V, int64_t C, int64_t T,
                                               float* S) {
  V16 acc[8][NV];
  for (int r = 0; r < 8; r++)
    for (int v = 0; v < NV; v++) acc[r][v] = ld(S + r * C + v * 16);
  for (int64_t t = 0; t < T; t++) {
    V16 b[NV];
    for (int v = 0; v < NV; v++) b[v] = ld(V + t * C + v * 16);
    for (int r = 0; r < 8; r++) {
      V16 a = splat<V16>(E[t * K + r]);
#if defined(__AVX512F__)
      asm("" : "+v"(a));  // one broadcast per value of E
#endif
      for (int v = 0; v < NV; v++) acc[r][v] += a * b[v];
    }
  }
  for (int r = 0; r < 8; r++)
    for (int v = 0; v < NV; v++) st(S + r * C + v * 16, acc[r][v]);
}

void winoGradRange(const WinoGradJob& j, int64_t r) {
  const int64_t C = j.c, K = j.k, P = j.n * (j.h / 2) * (j.w / 2);
  const int64_t p0 = P * r / j.ranges, p1 = P * (r + 1) / j.ranges;
  float* S = j.s + r * 16 * K * C;  // [16][K][C]
  std::fill(S, S + 16 * K * C, 0.f);
  const int64_t T0 = j.tilesPerChunk;
  float* Eb = threadScratch(16 * (posStride(T0, K) + posStride(T0, C)));  // E [16][T][K], then V [16][T][C]
  for (int64_t q = p0; q < p1; q += j.tilesPerChunk) {
    const int64_t T = std::min(j.tilesPerChunk, p1 - q);
    const int64_t es = posStride(T, K), vs = posStride(T, C);
    float* Vb = Eb + 16 * es;
    gradTransform(j.dy, K, j.h, j.w, q, T, Eb);
    inputTransform(j.x, C, j.h, j.w, q, T, Vb);
    for (int xi = 0; xi < 16; xi++) {
      const float* E = Eb + xi * es;
      const float* V = Vb + xi * vs;
      float* Sx = S + xi * K * C;
      const int64_t dv = C / 16;
      for (int64_t k0 = 0; k0 < K; k0 += 8) {
        int64_t v = 0;
        // 4 vectors as two tiles of 2, not 3 and a 1-vector tail (a load per multiply-add there)
        if (dv != 4)
          for (; v + 3 <= dv; v += 3) gradTile<3>(E + k0, K, V + v * 16, C, T, Sx + k0 * C + v * 16);
        for (; v + 2 <= dv; v += 2) gradTile<2>(E + k0, K, V + v * 16, C, T, Sx + k0 * C + v * 16);
        for (; v < dv; v++) gradTile<1>(E + k0, K, V + v * 16, C, T, Sx + k0 * C + v * 16);
      }
    }
  }
}

// dw[k, c] = G^T S[k, c] G (S summed over the ranges), 16 input channels at a time;
// G^T = [[1, 1/2, 1/2, 0], [0, 1/2, -1/2, 0], [0, 1/2, 1/2, 1]].
void winoGradOutput(const WinoGradJob& j, int64_t k) {
  const int64_t C = j.c, K = j.k;
  for (int64_t c0 = 0; c0 < C; c0 += 16) {
    V16 m[16];
    for (int xi = 0; xi < 16; xi++) {
      m[xi] = ld(j.s + (xi * K + k) * C + c0);
      for (int64_t r = 1; r < j.ranges; r++) m[xi] += ld(j.s + ((r * 16 + xi) * K + k) * C + c0);
    }
    V16 t[3][4];  // G^T m
    for (int b = 0; b < 4; b++) {
      const V16 p = 0.5f * (m[4 + b] + m[8 + b]);
      t[0][b] = m[b] + p;
      t[1][b] = 0.5f * (m[4 + b] - m[8 + b]);
      t[2][b] = p + m[12 + b];
    }
    float o[9][16];  // (G^T m) G, tap i * 3 + j
    for (int i = 0; i < 3; i++) {
      const V16 p = 0.5f * (t[i][1] + t[i][2]);
      st(o[i * 3], t[i][0] + p);
      st(o[i * 3 + 1], 0.5f * (t[i][1] - t[i][2]));
      st(o[i * 3 + 2], p + t[i][3]);
    }
    float* dst = j.dw + (k * C + c0) * 9;  // 16 input channels' 9 taps, contiguous
    for (int l = 0; l < 16; l++)
      for (int q = 0; q < 9; q++) dst[l * 9 + q] = o[q][l];
  }
}
