// Feasibility measurement (not used by the project's graphs): a 3x3, stride-1, pad-1 convolution as Winograd
// F(2x2, 3x3) (Lavin & Gray 2016) on ONNX Runtime's NCHW16c blocked layout, AVX-512, 64 channels in and out.
// Per image: the 4x4 input tiles transformed (B^T d B, 16 channels to a vector) into V [16][tiles][C], 16 GEMMs
// M = V U (U = G g G^T, the filters transformed once), each a register tile of 6 tiles x 4 vectors of output
// channels, then A^T m A plus the bias into the 2x2 output tiles; images split between OpenMP threads.
// The multiplies per output fall from 9 C to 4 C; the result is checked against a float64 direct convolution.
//   g++ -O3 -march=native -fopenmp -o /tmp/wino bench/proto/winogradF23.cc
//   OMP_NUM_THREADS=2 /tmp/wino 64 16      # channels (64 only), size; batch 64
// bench/README.md ("Winograd F(2x2, 3x3)") has its numbers against ONNX Runtime's NCHWc conv; native/winograd.cc is
// the kernel the graphs use (pass winograd-convs).
#include <immintrin.h>
#include <omp.h>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <algorithm>
typedef float V16 __attribute__((vector_size(64)));
typedef float V16U __attribute__((vector_size(64), aligned(4)));
static inline V16 ld(const float* p) { return *reinterpret_cast<const V16U*>(p); }
static inline void st(float* p, V16 v) { *reinterpret_cast<V16U*>(p) = v; }

int N = 64, C = 64, K = 64, H = 16, W = 16;

// U[xi][c][k] from w[k][c][3][3]: G g G^T, G = [[1,0,0],[.5,.5,.5],[.5,-.5,.5],[0,0,1]]
void filterTransform(const float* w, float* U) {
  for (int k = 0; k < K; k++)
    for (int c = 0; c < C; c++) {
      const float* g = w + (k * C + c) * 9;
      float t[4][3];
      for (int j = 0; j < 3; j++) {
        t[0][j] = g[0 * 3 + j];
        t[1][j] = 0.5f * (g[0 * 3 + j] + g[1 * 3 + j] + g[2 * 3 + j]);
        t[2][j] = 0.5f * (g[0 * 3 + j] - g[1 * 3 + j] + g[2 * 3 + j]);
        t[3][j] = g[2 * 3 + j];
      }
      for (int i = 0; i < 4; i++) {
        float u[4];
        u[0] = t[i][0];
        u[1] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
        u[2] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
        u[3] = t[i][2];
        for (int j = 0; j < 4; j++) U[((i * 4 + j) * C + c) * K + k] = u[j];
      }
    }
}

constexpr int R = 6;  // tiles per register tile
// M[t][k] (k: 64 = 4 vectors) = sum_c V[t][c] U[c][k], rows t0..t0+R
template <int RR>
static inline void mk(const float* V, const float* U, float* M, int ldv) {
  V16 acc[RR][4];
  for (int r = 0; r < RR; r++) for (int v = 0; v < 4; v++) acc[r][v] = V16{};
  for (int c = 0; c < 64; c++) {
    V16 u0 = ld(U + c * 64), u1 = ld(U + c * 64 + 16), u2 = ld(U + c * 64 + 32), u3 = ld(U + c * 64 + 48);
    for (int r = 0; r < RR; r++) {
      V16 b = V16{} + V[r * ldv + c];
      asm("" : "+v"(b));
      acc[r][0] += b * u0; acc[r][1] += b * u1; acc[r][2] += b * u2; acc[r][3] += b * u3;
    }
  }
  for (int r = 0; r < RR; r++) for (int v = 0; v < 4; v++) st(M + r * 64 + v * 16, acc[r][v]);
}

// one image: x [C/16][H][W][16] -> y [K/16][H][W][16]
void winoImage(const float* x, const float* U, const float* bias, float* y, float* Vb, float* Mb) {
  const int th = H / 2, tw = W / 2, T = th * tw, CB = C / 16;
  // input transform: Vb[xi][t][c]
  for (int cb = 0; cb < CB; cb++)
    for (int ty = 0; ty < th; ty++)
      for (int tx = 0; tx < tw; tx++) {
        V16 d[4][4];
        for (int i = 0; i < 4; i++)
          for (int j = 0; j < 4; j++) {
            int hy = 2 * ty - 1 + i, wx = 2 * tx - 1 + j;
            d[i][j] = (hy < 0 || hy >= H || wx < 0 || wx >= W) ? V16{} : ld(x + ((cb * H + hy) * W + wx) * 16);
          }
        V16 t[4][4];
        for (int j = 0; j < 4; j++) {
          t[0][j] = d[0][j] - d[2][j];
          t[1][j] = d[1][j] + d[2][j];
          t[2][j] = d[2][j] - d[1][j];
          t[3][j] = d[1][j] - d[3][j];
        }
        const int tt = ty * tw + tx;
        for (int i = 0; i < 4; i++) {
          V16 v0 = t[i][0] - t[i][2], v1 = t[i][1] + t[i][2], v2 = t[i][2] - t[i][1], v3 = t[i][1] - t[i][3];
          st(Vb + ((i * 4 + 0) * T + tt) * C + cb * 16, v0);
          st(Vb + ((i * 4 + 1) * T + tt) * C + cb * 16, v1);
          st(Vb + ((i * 4 + 2) * T + tt) * C + cb * 16, v2);
          st(Vb + ((i * 4 + 3) * T + tt) * C + cb * 16, v3);
        }
      }
  // 16 GEMMs: Mb[xi][t][k]
  for (int xi = 0; xi < 16; xi++) {
    const float* V = Vb + xi * T * C;
    const float* Ux = U + xi * C * K;
    float* M = Mb + xi * T * K;
    int t = 0;
    for (; t + R <= T; t += R) mk<R>(V + t * C, Ux, M + t * K, C);
    for (; t < T; t++) mk<1>(V + t * C, Ux, M + t * K, C);
  }
  // output transform: A^T m A, A^T = [[1,1,1,0],[0,1,-1,-1]]
  for (int kb = 0; kb < K / 16; kb++) {
    V16 b = ld(bias + kb * 16);
    for (int ty = 0; ty < th; ty++)
      for (int tx = 0; tx < tw; tx++) {
        const int tt = ty * tw + tx;
        V16 m[4][4];
        for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) m[i][j] = ld(Mb + ((i * 4 + j) * T + tt) * K + kb * 16);
        V16 s0[4], s1[4];
        for (int j = 0; j < 4; j++) { s0[j] = m[0][j] + m[1][j] + m[2][j]; s1[j] = m[1][j] - m[2][j] - m[3][j]; }
        V16 o00 = s0[0] + s0[1] + s0[2] + b, o01 = s0[1] - s0[2] - s0[3] + b;
        V16 o10 = s1[0] + s1[1] + s1[2] + b, o11 = s1[1] - s1[2] - s1[3] + b;
        float* yb = y + ((kb * H + 2 * ty) * W + 2 * tx) * 16;
        st(yb, o00); st(yb + 16, o01); st(yb + W * 16, o10); st(yb + W * 16 + 16, o11);
      }
  }
}

int main(int argc, char** argv) {
  if (argc > 1) C = K = atoi(argv[1]);
  if (argc > 2) H = W = atoi(argv[2]);
  if (C != 64) { printf("prototype GEMM is for 64 channels\n"); }
  std::vector<float> x(size_t(N) * C * H * W), w(size_t(K) * C * 9), bias(K), y(size_t(N) * K * H * W), yr(y.size());
  srand(1);
  for (auto& v : x) v = rand() / float(RAND_MAX) - 0.5f;
  for (auto& v : w) v = (rand() / float(RAND_MAX) - 0.5f) * 0.1f;
  for (auto& v : bias) v = rand() / float(RAND_MAX) - 0.5f;
  std::vector<float> U(16 * C * K), Vb(16 * (H / 2) * (W / 2) * C), Mb(16 * (H / 2) * (W / 2) * K);
  filterTransform(w.data(), U.data());
  const size_t xs = size_t(C) * H * W, ys = size_t(K) * H * W;
  auto run = [&] {
#pragma omp parallel
    {
      thread_local std::vector<float> Vt, Mt;
      Vt.resize(Vb.size()), Mt.resize(Mb.size());
#pragma omp for schedule(static)
      for (int n = 0; n < N; n++) winoImage(x.data() + n * xs, U.data(), bias.data(), y.data() + n * ys, Vt.data(), Mt.data());
    }
  };
  run();
  // reference (double) for image 0 and 1
  double maxerr = 0, maxref = 0;
  for (int n = 0; n < 2; n++)
    for (int k = 0; k < K; k++)
      for (int h = 0; h < H; h++)
        for (int ww = 0; ww < W; ww++) {
          double s = bias[k];
          for (int c = 0; c < C; c++)
            for (int i = 0; i < 3; i++)
              for (int j = 0; j < 3; j++) {
                int hy = h - 1 + i, wx = ww - 1 + j;
                if (hy < 0 || hy >= H || wx < 0 || wx >= W) continue;
                s += double(w[(k * C + c) * 9 + i * 3 + j]) * x[n * xs + ((c / 16 * H + hy) * W + wx) * 16 + c % 16];
              }
          double got = y[n * ys + ((k / 16 * H + h) * W + ww) * 16 + k % 16];
          maxerr = std::max(maxerr, std::fabs(got - s));
          maxref = std::max(maxref, std::fabs(s));
        }
  std::vector<double> ts;
  for (int r = 0; r < 15; r++) {
    auto t0 = std::chrono::steady_clock::now();
    run();
    ts.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ts.begin(), ts.end());
  double flops = 2.0 * N * K * C * 9 * H * W;
  printf("N %d C %d K %d %dx%d: winograd %.2f ms (median of 15, %d threads) = %.0f effective GFLOP/s; max abs err %.2e of max %.2f\n",
         N, C, K, H, W, ts[7], omp_get_max_threads(), flops / ts[7] / 1e6, maxerr, maxref);
}
