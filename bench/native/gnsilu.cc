// What one fused GroupNorm + affine + SiLU kernel would cost (NCHW float32, two threads, 32 groups),
// against ONNX Runtime's chain of kernels for the same op (npm run profile -- S-fwd). Not part of the
// product: onnxruntime-node cannot register custom kernels (see the README's Benchmarks section).
// Build and run: g++ -O3 -march=native -fopenmp-simd -ffast-math -o /tmp/gnsilu bench/native/gnsilu.cc -lpthread
//                /tmp/gnsilu 96 1024   # channels, H*W; batch 64
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>
#include <algorithm>
static void gn_silu(const float* x, float* y, const float* gam, const float* bet, int n0, int n1, int C, int G, int HW, float eps) {
  int cg = C / G;
  for (int n = n0; n < n1; n++)
    for (int g = 0; g < G; g++) {
      const float* xg = x + ((size_t)n * C + g * cg) * HW;
      float* yg = y + ((size_t)n * C + g * cg) * HW;
      size_t m = (size_t)cg * HW;
      float fs = 0, fs2 = 0;
      #pragma omp simd reduction(+:fs,fs2)
      for (size_t i = 0; i < m; i++) { fs += xg[i]; fs2 += xg[i] * xg[i]; }
      float mean = fs / m, var = fs2 / m - mean * mean, r = 1.f / std::sqrt(var + eps);
      for (int c = 0; c < cg; c++) {
        float a = gam[g * cg + c] * r, b = bet[g * cg + c] - mean * a;
        const float* xc = xg + (size_t)c * HW; float* yc = yg + (size_t)c * HW;
        #pragma omp simd
        for (int i = 0; i < HW; i++) { float z = xc[i] * a + b; yc[i] = z / (1.f + std::exp(-z)); }
      }
    }
}
int main(int argc, char** argv) {
  if (argc < 3) { fprintf(stderr, "usage: gnsilu CHANNELS HW\n"); return 2; }
  int N = 64, C = atoi(argv[1]), HW = atoi(argv[2]), G = 32;
  size_t total = (size_t)N * C * HW;
  std::vector<float> x(total), y(total), gam(C, 1.1f), bet(C, 0.1f);
  for (size_t i = 0; i < total; i++) x[i] = std::sin(i * 0.37f);
  std::vector<double> ts;
  for (int r = 0; r < 30; r++) {
    auto t0 = std::chrono::steady_clock::now();
    std::thread a(gn_silu, x.data(), y.data(), gam.data(), bet.data(), 0, N / 2, C, G, HW, 1e-6f);
    gn_silu(x.data(), y.data(), gam.data(), bet.data(), N / 2, N, C, G, HW, 1e-6f);
    a.join();
    ts.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ts.begin(), ts.end());
  printf("fused GN+SiLU [64,%d,%d]: median %.2f ms (y[5]=%f)\n", C, HW, ts[15], y[5]);
}
