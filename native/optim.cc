// The optimiser's elementwise passes (paper Appendix B: Adam, the EMA of the weights, the global gradient
// norm for clipping) over many tensors at once, on two threads, for the native binding (ortnative.cc).
// Built WITHOUT -ffast-math and with -ffp-contract=off (scripts/build-native.mjs): every operation is the
// IEEE float64 operation of src/train/optim.ts's loops, in the same order, rounded to float32 at the same
// points, so the results are those of the plain loops and of the WebAssembly kernels bit for bit, and the
// compiler may still vectorise (lanes are independent elements).
#include <cmath>
#include <cstddef>
#include <thread>
#include <vector>

#include "optim.h"

namespace {

// Split [0, total) elements of the segments into `parts` runs of about equal length and call
// f(segment, from, to) for each piece of part k (on the thread that runs part k).
template <typename F>
void forPart(const std::vector<OptimSegment>& segs, size_t part, size_t parts, F&& f) {
  size_t total = 0;
  for (const auto& s : segs) total += s.n;
  const size_t lo = total * part / parts, hi = total * (part + 1) / parts;
  size_t at = 0;
  for (size_t i = 0; i < segs.size() && at < hi; at += segs[i].n, i++) {
    const size_t a = lo > at ? lo - at : 0, b = hi - at < segs[i].n ? hi - at : segs[i].n;
    if (a < b) f(i, a, b);
  }
}

template <typename F>
void onTwoThreads(F&& part) {
  std::thread other([&] { part(1, 2); });
  part(0, 2);
  other.join();
}

}  // namespace

void optimAdam(const std::vector<OptimSegment>& segs, const AdamCoefs& c) {
  onTwoThreads([&](size_t k, size_t parts) {
    forPart(segs, k, parts, [&](size_t s, size_t a, size_t b) {
      float* p = segs[s].p;
      const float* g = segs[s].g;
      float* m = segs[s].m;
      float* v = segs[s].v;
      for (size_t i = a; i < b; i++) {
        const double gi = double(g[i]) * c.clip;
        const float mi = float(c.beta1 * double(m[i]) + c.c1 * gi);
        const float vi = float(c.beta2 * double(v[i]) + c.c2 * gi * gi);
        m[i] = mi;
        v[i] = vi;
        p[i] = float(double(p[i]) - (c.alpha * double(mi)) / (std::sqrt(double(vi)) + c.eps));
      }
    });
  });
}

void optimEma(const std::vector<OptimSegment>& segs, double decay) {
  const double c = 1 - decay;
  onTwoThreads([&](size_t k, size_t parts) {
    forPart(segs, k, parts, [&](size_t s, size_t a, size_t b) {
      float* e = segs[s].p;  // the average
      const float* p = segs[s].g;  // the weights
      for (size_t i = a; i < b; i++) e[i] = float(decay * double(e[i]) + c * double(p[i]));
    });
  });
}

// Per tensor: eight running sums of g^2 over i = j (mod 8), combined as ((s0 + s1) + (s2 + s3)) + ((s4 + s5) +
// (s6 + s7)); optim.ts's sumOfSquares adds them the same way. Whole tensors per thread (the order inside a
// tensor must not depend on the split); the caller adds the tensors' sums in order.
void optimSumSquares(const std::vector<OptimSegment>& segs, std::vector<double>& out) {
  out.assign(segs.size(), 0.0);
  onTwoThreads([&](size_t k, size_t parts) {
    for (size_t s = k; s < segs.size(); s += parts) {
      const float* g = segs[s].g;
      const size_t n = segs[s].n;
      double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      size_t i = 0;
      for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += double(g[i + j]) * double(g[i + j]);
      for (int j = 0; i < n; i++, j++) acc[j] += double(g[i]) * double(g[i]);
      out[s] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    }
  });
}
