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
      V16 b = V16{} + V[r * C + c];
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

void winoUnit(const WinoJob& j, int64_t u) {
  const int64_t H = j.h, W = j.w, C = j.c, K = j.k, tw = W / 2, tiles = (H / 2) * tw;
  const int64_t chunks = (tiles + j.tilesPerUnit - 1) / j.tilesPerUnit;
  const int64_t n = u / chunks, t0 = u % chunks * j.tilesPerUnit, T = std::min(j.tilesPerUnit, tiles - t0);
  if (T <= 0) return;
  float* Vb = threadScratch(16 * T * (C + K));  // V [16][T][C], then M [16][T][K]
  float* Mb = Vb + 16 * T * C;
  const float* x = j.x + n * C * H * W;
  // d -> B^T d B, B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]; 16 channels per vector.
  for (int64_t cb = 0; cb < C / 16; cb++)
    for (int64_t t = 0; t < T; t++) {
      const int64_t ty = (t0 + t) / tw, tx = (t0 + t) % tw;
      V16 d[4][4];
      for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) {
          const int64_t hy = 2 * ty - 1 + i, wx = 2 * tx - 1 + k;
          d[i][k] = (hy < 0 || hy >= H || wx < 0 || wx >= W) ? V16{} : ld(x + ((cb * H + hy) * W + wx) * 16);
        }
      V16 e[4][4];
      for (int k = 0; k < 4; k++) {
        e[0][k] = d[0][k] - d[2][k];
        e[1][k] = d[1][k] + d[2][k];
        e[2][k] = d[2][k] - d[1][k];
        e[3][k] = d[1][k] - d[3][k];
      }
      for (int i = 0; i < 4; i++) {
        float* v = Vb + ((i * 4) * T + t) * C + cb * 16;
        st(v, e[i][0] - e[i][2]);
        st(v + T * C, e[i][1] + e[i][2]);
        st(v + 2 * T * C, e[i][2] - e[i][1]);
        st(v + 3 * T * C, e[i][1] - e[i][3]);
      }
    }
  // M_xi [T][K] = V_xi [T][C] U_xi [C][K], for the 16 positions xi of the transformed tile.
  for (int xi = 0; xi < 16; xi++) {
    const float* V = Vb + xi * T * C;
    const float* U = j.u + xi * C * K;
    float* M = Mb + xi * T * K;
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
        for (int k = 0; k < 4; k++) m[i][k] = ld(Mb + ((i * 4 + k) * T + t) * K + kb * 16);
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
