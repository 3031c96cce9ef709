// The optimiser passes of native/optim.cc (strict IEEE float64, two threads), called by ortnative.cc.
#pragma once
#include <cstddef>
#include <vector>

struct OptimSegment {
  float* p;        // Adam: the weights; EMA: the average
  const float* g;  // Adam and the norm: the gradient; EMA: the weights
  float* m;
  float* v;
  size_t n;
};

struct AdamCoefs {
  double beta1, c1, beta2, c2, alpha, eps, clip;  // c1 = 1 - beta1, c2 = 1 - beta2
};

void optimAdam(const std::vector<OptimSegment>& segs, const AdamCoefs& c);
void optimEma(const std::vector<OptimSegment>& segs, double decay);
void optimSumSquares(const std::vector<OptimSegment>& segs, std::vector<double>& out);
