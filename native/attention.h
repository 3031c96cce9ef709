// Scaled dot-product attention on the U-Net's [B, D, L] layout (native/attention.cc): the forward and its
// gradient, the L x L weights made block by block in cache and never written out.
#pragma once
#include <cstdint>

struct AttnJob {
  int64_t b, d, dv, l, lk;  // batch (samples x heads), query/key channels, value channels, queries, keys
  float scale;              // the scores are scale q_i . k_j
  const float *q, *k, *v;   // [B, D, L], [B, D, Lk], [B, Dv, Lk]
  const float *o, *lse;     // the forward's outputs (backward: read)
  const float* dO;          // backward: the gradient of o
  float *out, *outLse;      // forward: o [B, Dv, L], lse [B, L] (log-sum-exp of each query's scaled scores)
  float *dq, *dk, *dvOut;   // backward: [B, D, L], [B, D, Lk], [B, Dv, Lk]
};

// Whether the kernels take these sizes: L and Lk multiples of 16, D and Dv multiples of 8.
bool attnShapesOk(int64_t d, int64_t dv, int64_t l, int64_t lk);
// Forward: units (sample, block of queries), each independent.
int64_t attnForwardUnits(const AttnJob& j);
void attnForwardUnit(const AttnJob& j, int64_t u);
// Backward: one unit per sample (its key and value gradients summed over its query blocks).
void attnBackwardUnit(const AttnJob& j, int64_t n);
