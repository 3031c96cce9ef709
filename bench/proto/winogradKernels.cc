// Times the project's own Winograd kernels (native/winograd.cc) outside ONNX Runtime: the forward convolution
// (ConvWinograd) or the weight gradient (ConvWinogradWeightGrad) of one layer, F(2x2, 3x3) or F(4x4, 3x3), on
// 1 or 2 threads (the gradient's ranges of tiles on std::threads; the forward on one thread only), random
// NCHWc data in blocks of 16 (AVX-512's layout) or 8 (AVX2's). Prints the best of 40 runs and the rate counting a direct convolution's multiply-adds
// (2 x 9 C K N H W flops), the unit of the bench's "of peak" column.
//   g++ -O3 -march=native -std=c++17 -pthread -Inative -o /tmp/wk bench/proto/winogradKernels.cc native/winograd.cc
//   /tmp/wk fwd 64 32 32 32 32 4      # kind, batch, C, K, H, W, tile m (fwd: 1 thread)
//   /tmp/wk grad 64 64 64 16 16 2 2   # ... and threads
//   /tmp/wk grad 64 64 64 16 16 2 2 8 # ... and the block (default 16)
//   /tmp/wk fwd-bf16 64 64 64 16 16 2  # the bfloat16 forward (AVX-512 BF16 builds; 16-channel blocks)
// bench/README.md ("Winograd F(4x4, 3x3) and the weight gradients") has its numbers.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "winograd.h"

int main(int argc, char** argv) {
  if (argc < 8 || (strcmp(argv[1], "fwd") && strcmp(argv[1], "grad") && strcmp(argv[1], "fwd-bf16"))) {
    fprintf(stderr, "usage: wk fwd|fwd-bf16|grad N C K H W M [THREADS [BLOCK]]\n");
    return 2;
  }
  const bool grad = !strcmp(argv[1], "grad"), bf16 = !strcmp(argv[1], "fwd-bf16");
  if (bf16 && !winoBf16()) {
    fprintf(stderr, "wk: this build has no AVX-512 BF16\n");
    return 2;
  }
  const int64_t n = atoi(argv[2]), c = atoi(argv[3]), k = atoi(argv[4]), h = atoi(argv[5]), w = atoi(argv[6]);
  const int64_t m = atoi(argv[7]), threads = argc > 8 ? atoi(argv[8]) : 1, block = argc > 9 ? atoi(argv[9]) : 16;
  if (!winoShapesOk(m, block, c, k, h, w)) {
    fprintf(stderr, "wk: the block must be 8 or 16, C and K multiples of it, H and W of m (2 or 4)\n");
    return 2;
  }
  std::vector<float> x(n * c * h * w), dy(n * k * h * w), u(winoPositions(m) * c * k), b(k);
  std::vector<float> out(grad ? k * c * 9 : n * k * h * w);  // dw [K, C, 3, 3] or y
  srand(1);
  for (auto* v : {&x, &dy, &u})
    for (auto& f : *v) f = rand() / float(RAND_MAX) - 0.5f;
  double best = 1e30;
  if (grad) {
    WinoGradJob j{};
    j.m = m, j.block = block, j.n = n, j.c = c, j.k = k, j.h = h, j.w = w;
    j.x = x.data(), j.dy = dy.data(), j.dw = out.data();
    winoGradPlan(j, threads);
    std::vector<float> s(j.ranges * winoPositions(m) * k * c);
    j.s = s.data();
    for (int it = 0; it < 40; it++) {
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<std::thread> ts;
      for (int64_t r = 0; r < j.ranges; r++) ts.emplace_back([&j, r] { winoGradRange(j, r); });
      for (auto& t : ts) t.join();
      for (int64_t q = 0; q < k; q++) winoGradOutput(j, q);
      best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
  } else {
    WinoJob j{};
    j.m = m, j.block = block, j.n = n, j.c = c, j.k = k, j.h = h, j.w = w;
    // bf16: the filters' bits reused as words of two bfloat16 values (any finite data times the same work)
    std::vector<uint32_t> words(u.size() / 2);
    for (size_t i = 0; i < words.size(); i++) words[i] = 0x3c003c00u ^ (uint32_t(i * 2654435761u) & 0x00ff00ffu);
    j.x = x.data(), j.bias = b.data();
    if (bf16)
      j.ub = words.data();
    else
      j.u = u.data();
    j.y = out.data();
    const int64_t units = winoUnits(j);
    for (int it = 0; it < 40; it++) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int64_t q = 0; q < units; q++) winoUnit(j, q);
      best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  printf("%s%s F(%ldx%ld), block %ld, batch %ld, %ld -> %ld channels, %ldx%ld, %ld thread(s): %.2f ms, %.0f GFLOP/s"
         " (direct-equivalent)\n",
         grad ? "weight gradient" : "forward", bf16 ? " (bfloat16)" : "", m, m, block, n, c, k, h, w, grad ? threads : 1, best,
         2.0 * 9 * c * k * n * h * w / best / 1e6);
}
