// A small Node-API binding to ONNX Runtime's C API that also registers this project's fused CPU kernels
// (custom-op domain "ai.ddpm"), which onnxruntime-node cannot load (its binding has no custom-op hook).
// It runs the same libonnxruntime that onnxruntime-node ships, opened with dlopen, so nothing else is
// installed. Built at `npm ci` by scripts/build-native.mjs when a C++ compiler is present; otherwise the
// engine layer falls back to onnxruntime-node (src/engine/node.ts). Issue #2.
//
// Kernels (float32, batch and groups spread over ORT's own intra-op threads):
//   GroupNormSilu(x [N, C, ...], gamma [C], beta [C]; groups, epsilon, block) -> y = SiLU(z),
//     z = GroupNorm(x) * gamma + beta (the U-Net's norm + SiLU, one pass over memory where ORT runs
//     LayerNormalization, Mul, Add and QuickGelu). block = 0: NCHW;
//     block = 8 or 16: x and y are in ORT's blocked NCHWc layout ([N, C/B, H, W, B] in memory, shape
//     [N, C, H, W]), C a multiple of B (groups within a block, spanning whole blocks, or straddling
//     blocks), so the tensor can stay in the layout ORT's NCHWc convolutions read and write.
//   GroupNormSiluShift(x, gamma, beta, shift [N, C]; groups, epsilon, block): SiLU(GroupNorm(x + shift)),
//     the shift broadcast over H, W (the ResnetBlock's timestep embedding), never written out; inference.
//   GroupNormSiluRecompute(x, gamma, beta, after): the same y again, in a training graph's backward; the
//     unread `after` orders it (graph pass recompute-norm-act).
//   GroupNormSiluGrad(dy, x, gamma, beta; groups, epsilon) -> dx, dgamma, dbeta: its gradient (NCHW).
//   Im2col(x [B, 1, H, W]; kernel, strides, pads, flip) -> [B, kh*kw, OH*OW]: conv patches for the
//     weight gradients.
//   SumTranspose(x [N, A, R, C]) -> [A, C, R], summed over N: a weight gradient from dy's patches, laid out.
//   ConvWeightGrad(x, dy; kh, kw, sh, sw, pt, pl) -> dW [O, C, kh, kw]: a conv's weight gradient over the batch,
//     register-tiled, without patches in memory.
//   BlockFilter(w [O, C, kh, kw]; block, flip) -> the NCHWc filter of a training conv (or of its input-gradient
//   conv, flip) in one tiled pass instead of two Transposes.
//   DropoutMul(x, key [3]; p, site) -> x times a dropout mask made from a counter-based hash (no mask
//     tensor: the backward runs it again on dy).
//   Attention(q [B, D, L], k [B, D, Lk], v [B, Dv, Lk]; scale) -> o [B, Dv, L], lse [B, L]: softmax attention
//     without its [L, Lk] weights in memory (native/attention.cc); AttentionGrad(q, k, v, o, lse, do) -> dq,
//     dk, dv, the weights made again from lse.
//   ConvWinograd(x, u, bias; block), ConvWinogradSum(x, u, bias, sum; block) -> y: a 3x3, stride-1, pad-1
//     convolution on the NCHWc layout as Winograd F(2x2 or 4x4, 3x3) (native/winograd.cc); WinogradFilter(w;
//     flip, m) -> u, its filters; ConvWinogradWeightGrad(x, dy; m, block) -> dw, its weight gradient as
//     Winograd F(3x3, m x m); ConvWinogradBf16(x, words, bias; block), ConvWinogradSumBf16(x, words, bias,
//     sum; block): the same with bfloat16 filters and products (AVX-512 BF16 builds; graph pass winograd-bf16).
//
// The C API is a table of function pointers that only ever grows, so a function keeps its slot across
// versions; the slots used here are named in `Slot` (from ONNX Runtime's onnxruntime_c_api.h).
#include <dlfcn.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif
#include <node_api.h>

#include "attention.h"
#include "winograd.h"
#include "optim.h"
#include "simd.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

// ---- ONNX Runtime ABI (opaque handles; function-table slots) ----
struct OrtStatus;
struct OrtEnv;
struct OrtSessionOptions;
struct OrtSession;
struct OrtValue;
struct OrtMemoryInfo;
struct OrtAllocator;
struct OrtTensorTypeAndShapeInfo;
struct OrtCustomOpDomain;
struct OrtKernelInfo;
struct OrtKernelContext;
typedef void* const* OrtApiTable;  // const OrtApi*: a table of function pointers

struct OrtApiBaseAbi {
  OrtApiTable (*GetApi)(uint32_t version);
  const char* (*GetVersionString)();
};

enum Slot : int {
  kGetErrorMessage = 2,
  kCreateEnv = 3,
  kCreateSessionFromArray = 8,
  kRun = 9,
  kCreateSessionOptions = 10,
  kEnableProfiling = 14,
  kDisableMemPattern = 17,
  kDisableCpuMemArena = 19,
  kSetSessionGraphOptimizationLevel = 23,
  kSetIntraOpNumThreads = 24,
  kSetInterOpNumThreads = 25,
  kCreateCustomOpDomain = 26,
  kCustomOpDomainAdd = 27,
  kAddCustomOpDomain = 28,
  kSessionGetInputCount = 30,
  kSessionGetOutputCount = 31,
  kSessionGetInputName = 36,
  kSessionGetOutputName = 37,
  kCreateTensorWithDataAsOrtValue = 49,
  kGetTensorMutableData = 51,
  kGetDimensionsCount = 61,
  kGetDimensions = 62,
  kGetTensorTypeAndShape = 65,
  kCreateCpuMemoryInfo = 69,
  kAllocatorFree = 76,
  kGetAllocatorWithDefaultOptions = 78,
  kKernelInfoGetAttributeFloat = 85,
  kKernelInfoGetAttributeInt64 = 86,
  kKernelContextGetInput = 90,
  kKernelContextGetOutput = 91,
  kReleaseStatus = 93,
  kReleaseSession = 95,
  kReleaseValue = 96,
  kReleaseTensorTypeAndShapeInfo = 99,
  kReleaseSessionOptions = 100,
  kSessionEndProfiling = 110,
  kAddSessionConfigEntry = 130,
  kCreateAndRegisterAllocator = 144,
  kReleaseArenaCfg = 157,
  kCreateArenaCfgV2 = 164,
  kKernelContextParallelFor = 274,  // since 1.17
};
static const uint32_t kApiVersion = 17;  // KernelContext_ParallelFor

// Process-wide, set once by init(): the API, its environment, CPU memory info, and the custom-op domain
// holding this file's kernels (added to every session's options; it must outlive them all).
static const OrtApiBaseAbi* apiBase = nullptr;
static OrtApiTable api = nullptr;
static OrtEnv* env = nullptr;
static OrtMemoryInfo* cpuInfo = nullptr;
static OrtCustomOpDomain* domain = nullptr;
// The process-wide CPU arena sessions share (memArena 'shared'), registered in `env` by init(); false when this
// ONNX Runtime refused it (then 'shared' sessions get their own arena, ORT's default).
static bool sharedArena = false;

template <typename F>
static F fn(Slot s) {
  return reinterpret_cast<F>(api[s]);
}
#define ORT(slot, type) fn<type>(slot)

// A failed ORT call becomes a JS exception with ORT's message; returns false so callers can unwind.
static bool ok(napi_env e, OrtStatus* st, const char* what) {
  if (!st) return true;
  std::string msg = std::string(what) + ": " + ORT(kGetErrorMessage, const char* (*)(const OrtStatus*))(st);
  ORT(kReleaseStatus, void (*)(OrtStatus*))(st);
  napi_throw_error(e, nullptr, msg.c_str());
  return false;
}

// The shape of a tensor value.
static std::vector<int64_t> dimsOf(const OrtValue* v) {
  OrtTensorTypeAndShapeInfo* info;
  ORT(kGetTensorTypeAndShape, OrtStatus * (*)(const OrtValue*, OrtTensorTypeAndShapeInfo**))(v, &info);
  size_t rank;
  ORT(kGetDimensionsCount, OrtStatus * (*)(const OrtTensorTypeAndShapeInfo*, size_t*))(info, &rank);
  std::vector<int64_t> dims(rank);
  ORT(kGetDimensions, OrtStatus * (*)(const OrtTensorTypeAndShapeInfo*, int64_t*, size_t))(info, dims.data(), rank);
  ORT(kReleaseTensorTypeAndShapeInfo, void (*)(OrtTensorTypeAndShapeInfo*))(info);
  return dims;
}

// A kernel's input i (its shape in *dims when asked), and its output i with the given shape.
static const float* inputOf(OrtKernelContext* ctx, size_t i, std::vector<int64_t>* dims = nullptr) {
  const OrtValue* v;
  ORT(kKernelContextGetInput, OrtStatus * (*)(const OrtKernelContext*, size_t, const OrtValue**))(ctx, i, &v);
  if (dims) *dims = dimsOf(v);
  void* p;
  ORT(kGetTensorMutableData, OrtStatus * (*)(const OrtValue*, void**))(v, &p);
  return static_cast<const float*>(p);
}
static float* outputOf(OrtKernelContext* ctx, size_t i, const std::vector<int64_t>& dims) {
  OrtValue* v;
  ORT(kKernelContextGetOutput, OrtStatus * (*)(OrtKernelContext*, size_t, const int64_t*, size_t, OrtValue**))(
      ctx, i, dims.data(), dims.size(), &v);
  void* p;
  ORT(kGetTensorMutableData, OrtStatus * (*)(const OrtValue*, void**))(v, &p);
  return static_cast<float*>(p);
}
// The product of the axes after N and C (H*W for images).
static int64_t innerOf(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (size_t i = 2; i < dims.size(); i++) n *= dims[i];
  return n;
}

// sigmoid(z) and SiLU(z) = z sigmoid(z)
static inline float sigmoid(float z) { return 1.f / (1.f + expInline(-z)); }
static inline float silu(float z) { return z / (1.f + expInline(-z)); }

// acc[l] += the sum over `rows` rows of B lanes of (x - c[l])^P, P = 1 or 2. Four rows (4B contiguous
// floats) per step into 4B partial sums: four independent add chains instead of one.
template <int B, int P>
static void addLanePowers(const float* x, int64_t rows, const float* c, float* acc) {
  float cc[4 * B], part[4 * B] = {};
  for (int l = 0; l < 4 * B; l++) cc[l] = c[l % B];
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4)
#pragma omp simd
    for (int l = 0; l < 4 * B; l++) {
      const float d = x[r * B + l] - cc[l];
      part[l] += P == 1 ? d : d * d;
    }
  for (; r < rows; r++)
#pragma omp simd
    for (int l = 0; l < B; l++) {
      const float d = x[r * B + l] - cc[l];
      part[l] += P == 1 ? d : d * d;
    }
  for (int l = 0; l < B; l++) acc[l] += (part[l] + part[B + l]) + (part[2 * B + l] + part[3 * B + l]);
}

// The sum of (x[i] - c)^P over m contiguous values: rows of 16 lanes and then the tail when m is large,
// one vector accumulator when it is small (a channel of 8x8 or 4x4, where the 4-chain set-up would cost more).
template <int P>
static float sumPowers(const float* x, int64_t m, float c) {
  float s = 0.f;
  if (m < 512) {
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < m; i++) s += P == 1 ? x[i] - c : (x[i] - c) * (x[i] - c);
    return s;
  }
  float cl[16], acc[16] = {};
  for (int l = 0; l < 16; l++) cl[l] = c;
  addLanePowers<16, P>(x, m / 16, cl, acc);
  for (int64_t i = m / 16 * 16; i < m; i++) s += P == 1 ? x[i] - c : (x[i] - c) * (x[i] - c);
  for (int l = 0; l < 16; l++) s += acc[l];
  return s;
}

// Mean and 1/sigma of m values, in two passes (a group's slice, at most a few hundred KB, stays in cache).
struct Stats {
  float mean, rstd;
};
static Stats groupStats(const float* x, int64_t m, float eps) {
  const float mean = sumPowers<1>(x, m, 0.f) / float(m);
  return {mean, 1.f / std::sqrt(sumPowers<2>(x, m, mean) / float(m) + eps)};
}

// ---- GroupNormSilu kernel ----
struct GnJob {
  const float* x;
  const float* gamma;
  const float* beta;
  const float* shift;  // [N, C] added to x before the norm (GroupNormSiluShift), or null
  float* y;
  int64_t channels, groups, inner;  // inner = H*W (product of the axes after C)
  float eps;
  int64_t block;  // 0: NCHW; B: ORT's blocked layout [N, C/B, H, W, B] (its NCHWc tensors)
};

// A group's statistics of x + shift, the shift one value per channel of `inner` values (two passes).
static Stats shiftedGroupStats(const float* x, const float* shift, int64_t cg, int64_t inner, float eps) {
  float s = 0.f;
  for (int64_t c = 0; c < cg; c++) s += sumPowers<1>(x + c * inner, inner, -shift[c]);
  const float m = float(cg * inner), mean = s / m;
  float v = 0.f;
  for (int64_t c = 0; c < cg; c++) v += sumPowers<2>(x + c * inner, inner, mean - shift[c]);
  return {mean, 1.f / std::sqrt(v / m + eps)};
}

// One (sample, group) slice: its statistics, then z = x * a + b per channel with a = gamma / sigma,
// b = beta - mean * a (+ shift * a with a shift), and y = SiLU(z).
static void gnSlice(const GnJob& j, int64_t idx) {
  const int64_t cg = j.channels / j.groups, g = idx % j.groups, n = idx / j.groups;
  const int64_t off = (n * j.channels + g * cg) * j.inner;
  const float* x = j.x + off;
  float* y = j.y + off;
  const float* shift = j.shift ? j.shift + n * j.channels + g * cg : nullptr;
  const Stats st =
      shift ? shiftedGroupStats(x, shift, cg, j.inner, j.eps) : groupStats(x, cg * j.inner, j.eps);
  for (int64_t c = 0; c < cg; c++) {
    const float a = j.gamma[g * cg + c] * st.rstd;
    const float b = j.beta[g * cg + c] - st.mean * a + (shift ? shift[c] * a : 0.f);
    const float* xc = x + c * j.inner;
    float* yc = y + c * j.inner;
#pragma omp simd
    for (int64_t i = 0; i < j.inner; i++) {
      yc[i] = silu(xc[i] * a + b);
    }
  }
}

// y = SiLU(x * a + b) over `rows` rows of B lanes (one block of B channels), a and b per lane.
template <int B>
static void siluAffineBlock(const float* x, float* y, int64_t rows, const float* a, const float* b) {
  for (int64_t r = 0; r < rows; r++)
#pragma omp simd
    for (int l = 0; l < B; l++) {
      y[r * B + l] = silu(x[r * B + l] * a[l] + b[l]);
    }
}

// The blocked layout: a unit is `span` consecutive blocks of B channels (span = cg / B when a group spans
// whole blocks, else 1 block holding B / cg groups); rows of B lanes, so every loop runs over whole vectors.
template <int B>
static void gnUnitBlocked(const GnJob& j, int64_t idx) {
  const int64_t cg = j.channels / j.groups, cb = j.channels / B;
  const int64_t span = cg >= B ? cg / B : 1, units = cb / span;
  const int64_t n = idx / units, u = idx % units;
  const float* x = j.x + (n * cb + u * span) * j.inner * B;
  float* y = j.y + (n * cb + u * span) * j.inner * B;
  const float* shift = j.shift ? j.shift + n * j.channels + u * span * B : nullptr;
  float acc[B] = {}, var[B] = {}, mean[B], rstd[B], c[B];
  auto shiftOf = [&](int64_t k, int l) { return shift ? shift[k * B + l] : 0.f; };
  for (int64_t k = 0; k < span; k++) {  // per-lane sums of x + shift
    for (int l = 0; l < B; l++) c[l] = -shiftOf(k, l);
    addLanePowers<B, 1>(x + k * j.inner * B, j.inner, c, acc);
  }
  // Lanes of one group: all B when a group spans blocks, else runs of cg lanes.
  const int lanes = cg >= B ? B : int(cg);
  const float count = float(span * j.inner) * float(lanes);
  for (int l0 = 0; l0 < B; l0 += lanes) {
    float s = 0.f;
    for (int l = l0; l < l0 + lanes; l++) s += acc[l];
    for (int l = l0; l < l0 + lanes; l++) mean[l] = s / count;
  }
  for (int64_t k = 0; k < span; k++) {  // per-lane sums of (x + shift - mean)^2
    for (int l = 0; l < B; l++) c[l] = mean[l] - shiftOf(k, l);
    addLanePowers<B, 2>(x + k * j.inner * B, j.inner, c, var);
  }
  for (int l0 = 0; l0 < B; l0 += lanes) {
    float s = 0.f;
    for (int l = l0; l < l0 + lanes; l++) s += var[l];
    for (int l = l0; l < l0 + lanes; l++) rstd[l] = 1.f / std::sqrt(s / count + j.eps);
  }
  for (int64_t k = 0; k < span; k++) {
    const int64_t c0 = (u * span + k) * B;
    float a[B], b[B];
    for (int l = 0; l < B; l++) {
      a[l] = j.gamma[c0 + l] * rstd[l];
      b[l] = j.beta[c0 + l] + (shiftOf(k, l) - mean[l]) * a[l];
    }
    siluAffineBlock<B>(x + k * j.inner * B, y + k * j.inner * B, j.inner, a, b);
  }
}

// The blocked layout when groups neither fit in a block nor span whole blocks (cg = 3 or 6 at block 16:
// a skip concatenation's 96 or 192 channels in 32 groups): one sample per unit; per-channel sums, then
// each group's mean from its channels, per-channel squared deviations from it, each group's variance.
template <int B>
static void gnSampleBlocked(const GnJob& j, int64_t n) {
  const int64_t c = j.channels, cb = c / B, cg = c / j.groups;
  const float* x = j.x + n * c * j.inner;
  float* y = j.y + n * c * j.inner;
  const float* shift = j.shift ? j.shift + n * c : nullptr;
  const size_t nc = static_cast<size_t>(c);
  std::vector<float> sum(nc, 0.f), mean(nc), rstd(nc), centre(nc);
  const float count = float(cg * j.inner);
  auto perGroup = [&](std::vector<float>& out, auto&& of) {  // of(group total) for every channel of it
    for (int64_t g = 0; g < j.groups; g++) {
      float s = 0.f;
      for (int64_t q = g * cg; q < (g + 1) * cg; q++) s += sum[size_t(q)];
      for (int64_t q = g * cg; q < (g + 1) * cg; q++) out[size_t(q)] = of(s);
    }
  };
  auto shiftOf = [&](int64_t q) { return shift ? shift[q] : 0.f; };
  for (int64_t q = 0; q < c; q++) centre[size_t(q)] = -shiftOf(q);
  float *sums = sum.data(), *centres = centre.data();
  for (int64_t k = 0; k < cb; k++) addLanePowers<B, 1>(x + k * j.inner * B, j.inner, centres + k * B, sums + k * B);
  perGroup(mean, [&](float s) { return s / count; });
  for (int64_t q = 0; q < c; q++) centre[size_t(q)] = mean[size_t(q)] - shiftOf(q), sum[size_t(q)] = 0.f;
  for (int64_t k = 0; k < cb; k++) addLanePowers<B, 2>(x + k * j.inner * B, j.inner, centres + k * B, sums + k * B);
  perGroup(rstd, [&](float s) { return 1.f / std::sqrt(s / count + j.eps); });
  for (int64_t k = 0; k < cb; k++) {
    float a[B], b[B];
    for (int l = 0; l < B; l++) {
      const int64_t q = k * B + l;
      a[l] = j.gamma[q] * rstd[size_t(q)];
      b[l] = j.beta[q] + (shiftOf(q) - mean[size_t(q)]) * a[l];
    }
    siluAffineBlock<B>(x + k * j.inner * B, y + k * j.inner * B, j.inner, a, b);
  }
}

// ORT's ParallelFor runs one task per index; a task takes a run of consecutive units (slices or blocks)
// of at least ~32K floats, so that small tensors (64 x 32 slices of 32 floats at 4x4) do not pay the
// pool's per-task cost thousands of times.
struct Chunks {
  const void* job;
  void (*unit)(const void*, int64_t);
  int64_t units, perTask;
};
static void chunkTask(void* data, size_t idx) {
  const auto* t = static_cast<const Chunks*>(data);
  const int64_t end = std::min(t->units, int64_t(idx + 1) * t->perTask);
  for (int64_t i = int64_t(idx) * t->perTask; i < end; i++) t->unit(t->job, i);
}
static void parallelUnits(OrtKernelContext* ctx, const void* job, void (*unit)(const void*, int64_t), int64_t units,
                          int64_t unitFloats) {
  Chunks t{job, unit, units, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, unitFloats))};
  const size_t tasks = size_t((units + t.perTask - 1) / t.perTask);
  auto pfor = ORT(kKernelContextParallelFor,
                  OrtStatus * (*)(const OrtKernelContext*, void (*)(void*, size_t), size_t, size_t, void*));
  if (OrtStatus* s = pfor(ctx, chunkTask, tasks, 0, &t)) {
    ORT(kReleaseStatus, void (*)(OrtStatus*))(s);
    for (size_t i = 0; i < tasks; i++) chunkTask(&t, i);
  }
}

struct GnKernel {
  int64_t groups = 32, block = 0;
  float eps = 1e-6f;
  bool shift = false;  // GroupNormSiluShift: input 3 is the shift [N, C]
};

// OrtCustomOp: `version` then 25 function pointers. ORT reads a member only when `version` is new enough
// for it, except the input/output characteristics, which it always asks for. With version 16 and the V2
// members null, ORT uses CreateKernel / KernelCompute; nothing newer is read.
struct CustomOpAbi {
  uint32_t version;
  void* (*CreateKernel)(const CustomOpAbi*, OrtApiTable, const OrtKernelInfo*);
  const char* (*GetName)(const CustomOpAbi*);
  const char* (*GetExecutionProviderType)(const CustomOpAbi*);
  int (*GetInputType)(const CustomOpAbi*, size_t);
  size_t (*GetInputTypeCount)(const CustomOpAbi*);
  int (*GetOutputType)(const CustomOpAbi*, size_t);
  size_t (*GetOutputTypeCount)(const CustomOpAbi*);
  void (*KernelCompute)(void*, OrtKernelContext*);
  void (*KernelDestroy)(void*);
  int (*GetInputCharacteristic)(const CustomOpAbi*, size_t);   // 0 = required
  int (*GetOutputCharacteristic)(const CustomOpAbi*, size_t);  // 0 = required
  int (*GetInputMemoryType)(const CustomOpAbi*, size_t);       // 0 = OrtMemTypeDefault
  int (*GetVariadicInputMinArity)(const CustomOpAbi*);
  int (*GetVariadicInputHomogeneity)(const CustomOpAbi*);
  int (*GetVariadicOutputMinArity)(const CustomOpAbi*);
  int (*GetVariadicOutputHomogeneity)(const CustomOpAbi*);
  void* CreateKernelV2;
  void* KernelComputeV2;
  void* InferOutputShapeFn;
  void* GetStartVersion;
  void* GetEndVersion;
  void* GetMayInplace;
  void* ReleaseMayInplace;
  void* GetAliasMap;
  void* ReleaseAliasMap;
};
static_assert(sizeof(CustomOpAbi) == 208, "OrtCustomOp is 26 slots on 64-bit");

static const int kFloat = 1;  // ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT
static const int kInt32 = 6;  // ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32

// A kernel's attribute into *out; an absent one leaves the default in place.
static void attr(const OrtKernelInfo* info, const char* name, int64_t* out) {
  auto get = ORT(kKernelInfoGetAttributeInt64, OrtStatus * (*)(const OrtKernelInfo*, const char*, int64_t*));
  if (OrtStatus* s = get(info, name, out)) ORT(kReleaseStatus, void (*)(OrtStatus*))(s);
}
static void attr(const OrtKernelInfo* info, const char* name, float* out) {
  auto get = ORT(kKernelInfoGetAttributeFloat, OrtStatus * (*)(const OrtKernelInfo*, const char*, float*));
  if (OrtStatus* s = get(info, name, out)) ORT(kReleaseStatus, void (*)(OrtStatus*))(s);
}

static void* gnCreate(const CustomOpAbi*, OrtApiTable, const OrtKernelInfo* info) {
  auto* k = new GnKernel();
  attr(info, "groups", &k->groups);
  attr(info, "epsilon", &k->eps);
  attr(info, "block", &k->block);
  return k;
}

static void gnCompute(void* kernel, OrtKernelContext* ctx) {
  const auto* k = static_cast<const GnKernel*>(kernel);
  std::vector<int64_t> dims;
  GnJob j{};
  j.x = inputOf(ctx, 0, &dims);
  j.gamma = inputOf(ctx, 1);
  j.beta = inputOf(ctx, 2);
  j.shift = k->shift ? inputOf(ctx, 3) : nullptr;
  j.y = outputOf(ctx, 0, dims);
  j.channels = dims[1];
  j.groups = k->groups;
  j.inner = innerOf(dims);
  j.eps = k->eps;
  j.block = k->block;
  if (j.block == 0) {
    parallelUnits(ctx, &j, [](const void* jj, int64_t i) { gnSlice(*static_cast<const GnJob*>(jj), i); },
                  dims[0] * j.groups, (j.channels / j.groups) * j.inner);
  } else {
    const int64_t cg = j.channels / j.groups, span = cg >= j.block ? cg / j.block : 1;
    if (cg % j.block != 0 && j.block % cg != 0) {  // groups straddle blocks: a sample per unit
      auto sample16 = [](const void* jj, int64_t i) { gnSampleBlocked<16>(*static_cast<const GnJob*>(jj), i); };
      auto sample8 = [](const void* jj, int64_t i) { gnSampleBlocked<8>(*static_cast<const GnJob*>(jj), i); };
      parallelUnits(ctx, &j, j.block == 16 ? +sample16 : +sample8, dims[0], j.channels * j.inner);
      return;
    }
    auto unit16 = [](const void* jj, int64_t i) { gnUnitBlocked<16>(*static_cast<const GnJob*>(jj), i); };
    auto unit8 = [](const void* jj, int64_t i) { gnUnitBlocked<8>(*static_cast<const GnJob*>(jj), i); };
    parallelUnits(ctx, &j, j.block == 16 ? +unit16 : +unit8, dims[0] * (j.channels / j.block / span),
                  span * j.block * j.inner);
  }
}

// A CPU custom op of this file: In float inputs (input WordsInput, if any, int32: packed words), Out float
// outputs, all required; `create` reads the node's attributes into a Kernel, which ORT hands to `compute` and
// then destroys.
template <typename Kernel, size_t In, size_t Out, int WordsInput = -1>
static constexpr CustomOpAbi fusedOp(const char* (*name)(const CustomOpAbi*),
                                     void* (*create)(const CustomOpAbi*, OrtApiTable, const OrtKernelInfo*),
                                     void (*compute)(void*, OrtKernelContext*)) {
  return {
      16,
      create,
      name,
      [](const CustomOpAbi*) -> const char* { return nullptr; },  // CPU
      [](const CustomOpAbi*, size_t i) -> int { return int(i) == WordsInput ? kInt32 : kFloat; },
      [](const CustomOpAbi*) -> size_t { return In; },
      [](const CustomOpAbi*, size_t) -> int { return kFloat; },
      [](const CustomOpAbi*) -> size_t { return Out; },
      compute,
      [](void* k) { delete static_cast<Kernel*>(k); },
      [](const CustomOpAbi*, size_t) -> int { return 0; },
      [](const CustomOpAbi*, size_t) -> int { return 0; },
      [](const CustomOpAbi*, size_t) -> int { return 0; },
      [](const CustomOpAbi*) -> int { return 1; },
      [](const CustomOpAbi*) -> int { return 1; },
      [](const CustomOpAbi*) -> int { return 1; },
      [](const CustomOpAbi*) -> int { return 1; },
      nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
  };
}

static const CustomOpAbi gnOp =
    fusedOp<GnKernel, 3, 1>([](const CustomOpAbi*) -> const char* { return "GroupNormSilu"; }, gnCreate, gnCompute);

// GroupNormSiluShift(x, gamma, beta, shift [N, C]): SiLU(GroupNorm(x + shift)) without writing x + shift
// (graph pass fuse-shift-groupnorm-silu; inference graphs).
static void* gnShiftCreate(const CustomOpAbi* op, OrtApiTable api, const OrtKernelInfo* info) {
  auto* k = static_cast<GnKernel*>(gnCreate(op, api, info));
  k->shift = true;
  return k;
}
static const CustomOpAbi gnShiftOp = fusedOp<GnKernel, 4, 1>(
    [](const CustomOpAbi*) -> const char* { return "GroupNormSiluShift"; }, gnShiftCreate, gnCompute);

// GroupNormSiluRecompute(x, gamma, beta, after): GroupNormSilu computed again in the backward (the graph
// pass recompute-norm-act); `after` is never read, it only makes ORT run the node once that gradient value
// exists (and keeps its common-subexpression elimination from merging it with the forward node).
static const CustomOpAbi gnRecomputeOp = fusedOp<GnKernel, 4, 1>(
    [](const CustomOpAbi*) -> const char* { return "GroupNormSiluRecompute"; }, gnCreate, gnCompute);


// ---- GroupNormSiluGrad kernel (NCHW) ----
// GroupNormSiluGrad(dy, x, gamma, beta; groups, epsilon) -> dx, dgamma, dbeta for y = SiLU(z),
// z = gamma xhat + beta, xhat = (x - mean) * rstd over each group (statistics recomputed from x: the slice
// is in cache). With dz = dy * s (1 + z (1 - s)), s = sigmoid(z), and per-channel sums S0 = sum dz,
// S1 = sum dz xhat: dx = rstd (gamma dz - sum_g(gamma S0) / M - xhat sum_g(gamma S1) / M), M = C/G * H*W;
// dbeta = sum_n S0, dgamma = sum_n S1. Two passes per slice: dz is parked in dx, then turned into dx.
struct GnGradJob {
  const float *dy, *x, *gamma, *beta;
  float* dx;
  float *s0, *s1;  // [N, C] partial sums
  int64_t channels, groups, inner;
  float eps;
  int64_t block;  // 0: NCHW; B: dy, x and dx in ORT's blocked layout [N, C/B, H, W, B]
};

static void gnGradSlice(const GnGradJob& j, int64_t idx) {
  const int64_t cg = j.channels / j.groups, g = idx % j.groups, n = idx / j.groups;
  const int64_t off = (n * j.channels + g * cg) * j.inner, m = cg * j.inner;
  const float *x = j.x + off, *dy = j.dy + off;
  float* dx = j.dx + off;
  const auto [mean, rstd] = groupStats(x, m, j.eps);
  float gs0 = 0.f, gs1 = 0.f;  // sum over the group's channels of gamma S0, gamma S1
  for (int64_t c = 0; c < cg; c++) {
    const int64_t ch = g * cg + c;
    const float ga = j.gamma[ch], be = j.beta[ch];
    const float *xc = x + c * j.inner, *dyc = dy + c * j.inner;
    float* dzc = dx + c * j.inner;
    float a0 = 0.f, a1 = 0.f;
#pragma omp simd reduction(+ : a0, a1)
    for (int64_t i = 0; i < j.inner; i++) {
      const float xh = (xc[i] - mean) * rstd, z = xh * ga + be;
      const float sg = sigmoid(z);
      const float dz = dyc[i] * sg * (1.f + z * (1.f - sg));
      dzc[i] = dz;
      a0 += dz;
      a1 += dz * xh;
    }
    j.s0[n * j.channels + ch] = a0;
    j.s1[n * j.channels + ch] = a1;
    gs0 += ga * a0;
    gs1 += ga * a1;
  }
  const float k0 = gs0 / float(m), k1 = gs1 / float(m);
  for (int64_t c = 0; c < cg; c++) {
    const float ga = j.gamma[g * cg + c];
    const float* xc = x + c * j.inner;
    float* d = dx + c * j.inner;
#pragma omp simd
    for (int64_t i = 0; i < j.inner; i++) {
      const float xh = (xc[i] - mean) * rstd;
      d[i] = rstd * (ga * d[i] - k0 - xh * k1);
    }
  }
}

// The blocked layout: a unit is one sample's run of lcm(C/G, B) channels (whole groups and whole blocks,
// contiguous in memory): per-lane sums give each channel's, then each group's statistics; the two passes of
// gnGradSlice run over rows of B lanes.
static int64_t gcd64(int64_t a, int64_t b) { return b ? gcd64(b, a % b) : a; }
static int64_t gnGradUnitChannels(int64_t cg, int64_t block) { return cg / gcd64(cg, block) * block; }
template <int B>
static void gnGradUnitBlocked(const GnGradJob& j, int64_t idx) {
  const int64_t cg = j.channels / j.groups, uc = gnGradUnitChannels(cg, B), units = j.channels / uc;
  const int64_t n = idx / units, c0 = idx % units * uc, nb = uc / B, hw = j.inner;
  const int64_t off = (n * j.channels + c0) * hw;  // blocks c0 / B .. of sample n: uc hw floats from here
  const float *x = j.x + off, *dy = j.dy + off;
  float* dx = j.dx + off;
  thread_local std::vector<float> scratch;
  scratch.assign(size_t(8 * uc), 0.f);
  float *sum = scratch.data(), *centre = sum + uc, *mean = centre + uc, *rstd = mean + uc;
  float *s0 = rstd + uc, *s1 = s0 + uc, *k0 = s1 + uc, *k1 = k0 + uc;
  const float count = float(cg * hw);
  auto perGroup = [&](float* out, auto&& of) {  // of(the group's total of sum) for each of its channels
    for (int64_t g0 = 0; g0 < uc; g0 += cg) {
      float t = 0.f;
      for (int64_t q = g0; q < g0 + cg; q++) t += sum[q];
      for (int64_t q = g0; q < g0 + cg; q++) out[q] = of(t);
    }
  };
  for (int64_t k = 0; k < nb; k++) addLanePowers<B, 1>(x + k * hw * B, hw, centre + k * B, sum + k * B);
  perGroup(mean, [&](float t) { return t / count; });
  for (int64_t q = 0; q < uc; q++) centre[q] = mean[q], sum[q] = 0.f;
  for (int64_t k = 0; k < nb; k++) addLanePowers<B, 2>(x + k * hw * B, hw, centre + k * B, sum + k * B);
  perGroup(rstd, [&](float t) { return 1.f / std::sqrt(t / count + j.eps); });
  // Pass 1: dz = dy s (1 + z (1 - s)) parked in dx; per-channel S0 = sum dz, S1 = sum dz xhat.
  for (int64_t k = 0; k < nb; k++) {
    const float *xk = x + k * hw * B, *dyk = dy + k * hw * B;
    float* dzk = dx + k * hw * B;
    float ga[B], be[B], mu[B], rs[B], a0[B] = {}, a1[B] = {};
    for (int l = 0; l < B; l++) {
      const int64_t q = k * B + l;
      ga[l] = j.gamma[c0 + q], be[l] = j.beta[c0 + q], mu[l] = mean[q], rs[l] = rstd[q];
    }
    for (int64_t r = 0; r < hw; r++)
#pragma omp simd
      for (int l = 0; l < B; l++) {
        const float xh = (xk[r * B + l] - mu[l]) * rs[l], z = xh * ga[l] + be[l];
        const float sg = sigmoid(z);
        const float dz = dyk[r * B + l] * sg * (1.f + z * (1.f - sg));
        dzk[r * B + l] = dz;
        a0[l] += dz;
        a1[l] += dz * xh;
      }
    for (int l = 0; l < B; l++) s0[k * B + l] = a0[l], s1[k * B + l] = a1[l];
  }
  // Each group's sum of gamma S0 and gamma S1, over M = C/G hw values: k0, k1 per channel.
  for (int64_t g0 = 0; g0 < uc; g0 += cg) {
    float gs0 = 0.f, gs1 = 0.f;
    for (int64_t q = g0; q < g0 + cg; q++) gs0 += j.gamma[c0 + q] * s0[q], gs1 += j.gamma[c0 + q] * s1[q];
    for (int64_t q = g0; q < g0 + cg; q++) k0[q] = gs0 / count, k1[q] = gs1 / count;
  }
  for (int64_t k = 0; k < nb; k++) {  // pass 2: dx = rstd (gamma dz - k0 - xhat k1)
    const float* xk = x + k * hw * B;
    float* d = dx + k * hw * B;
    float ga[B], mu[B], rs[B], q0[B], q1[B];
    for (int l = 0; l < B; l++) {
      const int64_t q = k * B + l;
      ga[l] = j.gamma[c0 + q], mu[l] = mean[q], rs[l] = rstd[q], q0[l] = k0[q], q1[l] = k1[q];
    }
    for (int64_t r = 0; r < hw; r++)
#pragma omp simd
      for (int l = 0; l < B; l++) {
        const float xh = (xk[r * B + l] - mu[l]) * rs[l];
        d[r * B + l] = rs[l] * (ga[l] * d[r * B + l] - q0[l] - xh * q1[l]);
      }
  }
  for (int64_t q = 0; q < uc; q++) j.s0[n * j.channels + c0 + q] = s0[q], j.s1[n * j.channels + c0 + q] = s1[q];
}

static void gnGradCompute(void* kernel, OrtKernelContext* ctx) {
  const auto* k = static_cast<const GnKernel*>(kernel);
  std::vector<int64_t> dims;
  GnGradJob j{};
  j.dy = inputOf(ctx, 0);
  j.x = inputOf(ctx, 1, &dims);
  j.gamma = inputOf(ctx, 2);
  j.beta = inputOf(ctx, 3);
  const int64_t c = dims[1];
  j.dx = outputOf(ctx, 0, dims);
  float* dg = outputOf(ctx, 1, {c});
  float* db = outputOf(ctx, 2, {c});
  std::vector<float> partial(size_t(2 * dims[0] * c));
  j.s0 = partial.data();
  j.s1 = partial.data() + dims[0] * c;
  j.channels = c;
  j.groups = k->groups;
  j.inner = innerOf(dims);
  j.eps = k->eps;
  j.block = k->block;
  const int64_t cg = c / j.groups;
  if (j.block == 0) {
    parallelUnits(ctx, &j, [](const void* jj, int64_t i) { gnGradSlice(*static_cast<const GnGradJob*>(jj), i); },
                  dims[0] * j.groups, 2 * cg * j.inner);
  } else {
    // The graph builder emits this form only for whole blocks of 8 or 16 channels (then uc divides C).
    const int64_t uc = gnGradUnitChannels(cg, j.block);
    auto unit16 = [](const void* jj, int64_t i) { gnGradUnitBlocked<16>(*static_cast<const GnGradJob*>(jj), i); };
    auto unit8 = [](const void* jj, int64_t i) { gnGradUnitBlocked<8>(*static_cast<const GnGradJob*>(jj), i); };
    parallelUnits(ctx, &j, j.block == 16 ? +unit16 : +unit8, dims[0] * (c / uc), 2 * uc * j.inner);
  }
  for (int64_t ch = 0; ch < c; ch++) {
    float a0 = 0.f, a1 = 0.f;
    for (int64_t n = 0; n < dims[0]; n++) a0 += j.s0[n * c + ch], a1 += j.s1[n * c + ch];
    db[ch] = a0;
    dg[ch] = a1;
  }
}

static const CustomOpAbi gnGradOp = fusedOp<GnKernel, 4, 3>(
    [](const CustomOpAbi*) -> const char* { return "GroupNormSiluGrad"; }, gnCreate, gnGradCompute);


// One row of conv patches: dst[px] = row[px stepX + off] inside the source row (width w), zero outside it or
// without a row (Im2col's rows, ConvWeightGrad's planes). Plain loops, not memset/memcpy: rows are 4 to 64
// floats, where a library call costs more than the copy.
static void shiftedRow(float* dst, const float* row, int64_t gw, int64_t stepX, int64_t off, int64_t w) {
  if (!row) {
    for (int64_t px = 0; px < gw; px++) dst[px] = 0.f;
    return;
  }
  if (stepX == 1) {
    const int64_t lo = std::clamp<int64_t>(-off, 0, gw), hi = std::clamp<int64_t>(w - off, lo, gw);
    for (int64_t px = 0; px < lo; px++) dst[px] = 0.f;
    const float* src = row + off;
    for (int64_t px = lo; px < hi; px++) dst[px] = src[px];
    for (int64_t px = hi; px < gw; px++) dst[px] = 0.f;
    return;
  }
  for (int64_t px = 0; px < gw; px++) {
    const int64_t sx = px * stepX + off;
    dst[px] = sx >= 0 && sx < w ? row[sx] : 0.f;
  }
}

// ---- Im2col kernel ----
// Im2col(x [B, 1, H, W]; kh, kw, sh, sw, pt, pl, pb, pr, flip) -> [B, kh*kw, OH*OW]: row q of sample b holds
// tap (i, j) = (t / kw, t % kw), t = q (or kh*kw-1-q with flip), of every output position, zero outside
// the image: the patches of the weight gradients' GEMMs, as a strided copy where ORT ran a one-hot Conv.
struct Im2colKernel {
  int64_t kh = 3, kw = 3, sh = 1, sw = 1, pt = 1, pl = 1, pb = 1, pr = 1, flip = 0;
};
struct Im2colJob {
  const Im2colKernel* k;
  const float* x;
  float* y;
  int64_t h, w, oh, ow;
};

static void im2colRow(const Im2colJob& j, int64_t idx) {
  const Im2colKernel& k = *j.k;
  const int64_t taps = k.kh * k.kw, b = idx / taps, q = idx % taps, t = k.flip ? taps - 1 - q : q;
  const int64_t ti = t / k.kw, tj = t % k.kw;
  const float* src = j.x + b * j.h * j.w;
  float* dst = j.y + idx * j.oh * j.ow;
  for (int64_t oy = 0; oy < j.oh; oy++) {
    const int64_t sy = oy * k.sh + ti - k.pt;
    shiftedRow(dst + oy * j.ow, sy >= 0 && sy < j.h ? src + sy * j.w : nullptr, j.ow, k.sw, tj - k.pl, j.w);
  }
}

static void* im2colCreate(const CustomOpAbi*, OrtApiTable, const OrtKernelInfo* info) {
  auto* k = new Im2colKernel();
  for (const auto& [name, out] : {std::pair<const char*, int64_t*>{"kh", &k->kh}, {"kw", &k->kw}, {"sh", &k->sh},
                                  {"sw", &k->sw}, {"pt", &k->pt}, {"pl", &k->pl}, {"pb", &k->pb}, {"pr", &k->pr},
                                  {"flip", &k->flip}})
    attr(info, name, out);
  return k;
}

static void im2colCompute(void* kernel, OrtKernelContext* ctx) {
  const auto* k = static_cast<const Im2colKernel*>(kernel);
  std::vector<int64_t> d;  // [B, 1, H, W]
  Im2colJob j{k, inputOf(ctx, 0, &d), nullptr, d[2], d[3], 0, 0};
  j.oh = (j.h + k->pt + k->pb - k->kh) / k->sh + 1;
  j.ow = (j.w + k->pl + k->pr - k->kw) / k->sw + 1;
  const std::vector<int64_t> out = {d[0], k->kh * k->kw, j.oh * j.ow};
  j.y = outputOf(ctx, 0, out);
  parallelUnits(ctx, &j, [](const void* jj, int64_t i) { im2colRow(*static_cast<const Im2colJob*>(jj), i); },
                out[0] * out[1], out[2]);
}

static const CustomOpAbi im2colOp =
    fusedOp<Im2colKernel, 1, 1>([](const CustomOpAbi*) -> const char* { return "Im2col"; }, im2colCreate, im2colCompute);

// ---- BlockFilter kernel ----
// BlockFilter(w [O, C, kh, kw]; block B, flip) -> ORT's blocked (NCHWc) filter of a conv whose weight changes
// every step (the training graph feeds it as an input, so ORT cannot pre-pack it): one pass in B x B tiles
// where two general Transposes ran at 1-2 GB/s. flip = 0: the conv's own filter [O/B, C/B, k, B(C), B(O)],
// out[ob, cb, t, i, o] = w[ob B + o, cb B + i, t]. flip = 1: the input-gradient conv's filter (w transposed to
// [C, O, kh, kw] and flipped in space) [C/B, O/B, k, B(O), B(C)], out[cb, ob, t, i, o] = w[ob B + i, cb B + o,
// k - 1 - t]. O and C whole blocks. One unit is one output tile (k B^2 floats, contiguous).
struct BlockFilterKernel {
  int64_t block = 16, flip = 0;
};
struct BlockFilterJob {
  const float* w;
  float* y;
  int64_t o, c, k, b, flip;
};

static void blockFilterTile(const BlockFilterJob& j, int64_t idx) {
  const int64_t B = j.b, k = j.k, ck = j.c * k;
  float* dst = j.y + idx * k * B * B;
  if (!j.flip) {  // idx = ob * (C/B) + cb
    const int64_t ob = idx / (j.c / B), cb = idx % (j.c / B);
    for (int64_t o = 0; o < B; o++) {
      const float* row = j.w + (ob * B + o) * ck + cb * B * k;  // w[ob B + o, cb B + i, t] = row[i k + t]
      for (int64_t i = 0; i < B; i++)
        for (int64_t t = 0; t < k; t++) dst[(t * B + i) * B + o] = row[i * k + t];
    }
  } else {  // idx = cb * (O/B) + ob
    const int64_t cb = idx / (j.o / B), ob = idx % (j.o / B);
    for (int64_t i = 0; i < B; i++) {
      const float* row = j.w + (ob * B + i) * ck + cb * B * k;  // w[ob B + i, cb B + o, s] = row[o k + s]
      for (int64_t o = 0; o < B; o++)
        for (int64_t s = 0; s < k; s++) dst[((k - 1 - s) * B + i) * B + o] = row[o * k + s];
    }
  }
}

static void* blockFilterCreate(const CustomOpAbi*, OrtApiTable, const OrtKernelInfo* info) {
  auto* k = new BlockFilterKernel();
  attr(info, "block", &k->block);
  attr(info, "flip", &k->flip);
  return k;
}

static void blockFilterCompute(void* kernel, OrtKernelContext* ctx) {
  const auto* k = static_cast<const BlockFilterKernel*>(kernel);
  std::vector<int64_t> d;  // [O, C, kh, kw]
  const float* w = inputOf(ctx, 0, &d);
  BlockFilterJob j{w, nullptr, d[0], d[1], d[2] * d[3], k->block, k->flip};
  // Shape checked by the graph builder (whole blocks); the output has the input's shape, transposed for flip.
  const std::vector<int64_t> out = k->flip ? std::vector<int64_t>{d[1], d[0], d[2], d[3]} : d;
  j.y = outputOf(ctx, 0, out);
  const int64_t tiles = (j.o / j.b) * (j.c / j.b);
  parallelUnits(ctx, &j, [](const void* jj, int64_t i) { blockFilterTile(*static_cast<const BlockFilterJob*>(jj), i); },
                tiles, j.k * j.b * j.b);
}

static const CustomOpAbi blockFilterOp = fusedOp<BlockFilterKernel, 1, 1>(
    [](const CustomOpAbi*) -> const char* { return "BlockFilter"; }, blockFilterCreate, blockFilterCompute);

// ---- SumTranspose kernel ----
// SumTranspose(x [N, A, R, C]) -> y [A, C, R], y[a, c, r] = sum over n of x[n, a, r, c] (float32, n in order):
// the weight gradient of a conv computed from dy's patches, [N, Cout, k, Cin] per sample, summed over the
// batch and laid out as the weight [Cout, Cin, k] in one pass (a ones-row MatMul and a Transpose that ORT ran
// at 1.6 GB/s before). One unit: one a and a tile of kSumTile c's, the R x tile sums held in a local buffer.
constexpr int64_t kSumTile = 64;
struct SumTransposeKernel {};
struct SumTransposeJob {
  const float* x;
  float* y;
  int64_t n, a, r, c, tiles;  // tiles: of kSumTile c's per a
};

static void sumTransposeUnit(const SumTransposeJob& j, int64_t idx) {
  const int64_t a = idx / j.tiles, c0 = (idx % j.tiles) * kSumTile, w = std::min(kSumTile, j.c - c0);
  thread_local std::vector<float> acc;  // the pool's threads keep theirs: no allocation per unit
  acc.assign(size_t(j.r * kSumTile), 0.f);
  for (int64_t n = 0; n < j.n; n++) {
    const float* row = j.x + ((n * j.a + a) * j.r) * j.c + c0;
    for (int64_t r = 0; r < j.r; r++) {
      float* dst = acc.data() + r * kSumTile;
      const float* src = row + r * j.c;
#pragma omp simd
      for (int64_t q = 0; q < w; q++) dst[q] += src[q];
    }
  }
  float* out = j.y + (a * j.c + c0) * j.r;
  for (int64_t q = 0; q < w; q++)
    for (int64_t r = 0; r < j.r; r++) out[q * j.r + r] = acc[size_t(r * kSumTile + q)];
}

static void* sumTransposeCreate(const CustomOpAbi*, OrtApiTable, const OrtKernelInfo*) { return new SumTransposeKernel(); }

static void sumTransposeCompute(void*, OrtKernelContext* ctx) {
  std::vector<int64_t> d;  // [N, A, R, C]
  SumTransposeJob j{inputOf(ctx, 0, &d), nullptr, d[0], d[1], d[2], d[3], (d[3] + kSumTile - 1) / kSumTile};
  j.y = outputOf(ctx, 0, {j.a, j.c, j.r});
  parallelUnits(ctx, &j, [](const void* jj, int64_t i) { sumTransposeUnit(*static_cast<const SumTransposeJob*>(jj), i); },
                j.a * j.tiles, j.n * j.r * kSumTile);
}

static const CustomOpAbi sumTransposeOp = fusedOp<SumTransposeKernel, 1, 1>(
    [](const CustomOpAbi*) -> const char* { return "SumTranspose"; }, sumTransposeCreate, sumTransposeCompute);

// ---- ConvWeightGrad kernel ----
// ConvWeightGrad(x [N, C, H, W], dy [N, O, OH, OW]; kh, kw, sh, sw, pt, pl) -> dW [O, C, kh, kw],
// dW[o, c, i, j] = sum over n, oy, ox of dy[n, o, oy, ox] x[n, c, oy sh + i - pt, ox sw + j - pl] (zero outside
// x): a conv's weight gradient as one register-tiled product over the whole batch, where Im2col wrote kh kw
// copies of x to memory, a MatMul per sample wrote a [C kh kw, O] product and a ones-row MatMul summed them.
// It is a GEMM with K = (sample, grid position): dW^T [C kh kw, O] = patches [C kh kw, K] x dy^T [K, O].
// One side's rows (the "direct" side: dy; x instead when the conv keeps its grid and C > O, dW[o, c, i, j] =
// sum x[n, c, y, x] dy[n, o, y + pt - i, x + pl - j]) are transposed per group of samples into At [K, D] (phase
// 1): vectors along D. The other side's tap rows (the "shifted" side) are copied per sample into small planes:
// for stride 1 one plane per channel, padded by kh - 1 rows and kw - 1 columns of zeros, so that a tap is an
// offset into it and the tiles walk its rows (three planes per channel, one per horizontal offset, had written
// 2.7 times the floats: S's [64, 64, 16, 16] layer 2.1 -> 0.9 ms of planes on one thread); else one plane per
// tap, every tap a contiguous row over the grid. Phase 2 (over column blocks) runs tiles of kWgNV vectors of D
// times kWgB tap columns, a column's value broadcast at each position: kWgNV kWgB accumulators in registers
// over the group's positions, added into the column block's sums. Threads take ranges of samples (each its
// own At, planes and sums, added at the end) or, for batches under 4, share a group's transposes and column
// blocks (bench/README.md, "The weight gradients"). Either side may be in ORT's blocked layout (attributes
// xblock, dyblock; the blocked training graph): a blocked direct side is copied into At B floats per position,
// a blocked shifted side transposed into the planes 16 positions x 16 lanes at a time.
#if defined(__AVX512F__)
constexpr int kWgV = 16, kWgNV = 3, kWgB = 9;  // 27 accumulators + 3 direct vectors + 1 broadcast of 32
#else
constexpr int kWgV = 8, kWgNV = 2, kWgB = 6;  // 12 + 2 + 1 of 16
#endif
typedef float WgVec __attribute__((vector_size(kWgV * 4)));
typedef float WgVecU __attribute__((vector_size(kWgV * 4), aligned(4)));
// At of one group of samples: a half of a 1 MB L2 (Zen 4/5), streamed once per column block.
constexpr int64_t kWgAtBytes = 512 * 1024;
constexpr int64_t kWgPlaneBytes = 256 * 1024;  // planes of a block of channels per group (below)
constexpr int64_t kWgUnits = 8;  // column-block ranges of phase 2 (ORT's pool balances them over its threads)

struct ConvWeightGradKernel {
  int64_t kh = 3, kw = 3, sh = 1, sw = 1, pt = 1, pl = 1;
  int64_t xblock = 0, dyblock = 0;  // x / dy in ORT's blocked layout with this block (8 or 16), 0 = NCHW
};
struct WgJob {
  const float* d;  // direct rows [N, dn, P]
  const float* s;  // shifted side's source [N, sn, srcH, srcW]
  int64_t n, dn, sn, gh, gw, P, srcH, srcW, stepY, stepX, kh, kw;
  int64_t offY0, offX0, sign;  // tap (i, j) reads src[py stepY + offY0 + sign i, px stepX + offX0 + sign j]
  enum Mode { kDirect, kShift, kTaps } mode;
  int64_t dnPad, G, cols, cblocks, units;
  int64_t ext, nplanes, planeLen, sampleStride, chanStride, offYmin, offXmin, unitPlaneFloats;
  int64_t rows, width, pw;  // the tiles' positions: rows x width, the shifted side's rows pw floats apart
  float *at, *sums, *planes;  // At [G P, dnPad]; sums [cblocks kWgB, dnPad]; planes per unit
  const float* zero;          // P zeros: the padding columns of the last block
  int64_t db, sb;             // the direct / shifted side's NCHWc block (ORT's [N, C/B, H, W, B]), 0 = NCHW
  int64_t n0, g1;             // the current group: samples n0 .. n0 + g1
};

// Phase 1, one block of 16 direct rows: At[(g P + p) dnPad + d] = direct[n0 + g][d][p] (zero past dn).
static void wgTransposeBlock(const WgJob& j, int64_t blk) {
  const int64_t d0 = blk * 16, P = j.P, nd = std::min<int64_t>(16, j.dn - d0);
  if (j.db) {  // blocked: the 16 rows are whole blocks (the graph builder checks), B floats per position each
    const int64_t B = j.db;
    for (int64_t g = 0; g < j.g1; g++)
      for (int64_t b0 = 0; b0 < 16; b0 += B) {
        float* dst = j.at + g * P * j.dnPad + d0 + b0;
        if (d0 + b0 >= j.dn) {
          for (int64_t p = 0; p < P; p++)
            for (int64_t i = 0; i < B; i++) dst[p * j.dnPad + i] = 0.f;
          continue;
        }
        const float* src = j.d + ((j.n0 + g) * j.dn + d0 + b0) * P;  // block (d0 + b0) / B of the sample
        for (int64_t p = 0; p < P; p++)
#pragma omp simd
          for (int64_t i = 0; i < B; i++) dst[p * j.dnPad + i] = src[p * B + i];
      }
    return;
  }
  for (int64_t g = 0; g < j.g1; g++) {
    const float* src = j.d + (j.n0 + g) * j.dn * P;
    float* dst = j.at + g * P * j.dnPad + d0;
    int64_t p = 0;
#if defined(__AVX512F__)
    for (; nd == 16 && p + 16 <= P; p += 16) {
      __m512 r[16];
      for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + (d0 + i) * P + p);
      transpose16(r);
      for (int i = 0; i < 16; i++) _mm512_storeu_ps(dst + (p + kTr16Order[i]) * j.dnPad, r[i]);
    }
#elif defined(__AVX2__)
    for (; nd == 16 && p + 8 <= P; p += 8)  // two 8x8 transposes (rows d0..d0+7, d0+8..d0+15) per 8 positions
      for (int half = 0; half < 2; half++) {
        __m256 r[8], t[8];
        for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + (d0 + 8 * half + i) * P + p);
        for (int i = 0; i < 4; i++) {
          t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
          t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        for (int i = 0; i < 2; i++) {  // within 128-bit lanes: 4 rows of columns {0, 1} and {2, 3}
          r[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
          r[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
          r[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
          r[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
        }
        for (int c = 0; c < 4; c++) {  // lanes: rows 0-3 and 4-7 of columns c and c + 4
          _mm256_storeu_ps(dst + (p + c) * j.dnPad + 8 * half, _mm256_permute2f128_ps(r[c], r[4 + c], 0x20));
          _mm256_storeu_ps(dst + (p + c + 4) * j.dnPad + 8 * half, _mm256_permute2f128_ps(r[c], r[4 + c], 0x31));
        }
      }
#endif
    for (; p < P; p++)
      for (int64_t i = 0; i < 16; i++) dst[p * j.dnPad + i] = i < nd ? src[(d0 + i) * P + p] : 0.f;
  }
}

// c[q dnPad + v kWgV ..] (NV vectors of D for each of kWgB columns) += sum over samples g < G and positions
// p = r W + x (r < R, x < W) of At[(g R W + p) dnPad + v kWgV ..] times column q's value b[q][g bs[q] + r pw + x]:
// the shifted side's rows pw >= W floats apart (a padded plane), or R = 1 for one run of positions.
// Not inlined: inside its caller GCC spills accumulators to the stack.
template <int NV>
__attribute__((noinline)) static void wgTile(const float* at, int64_t dnPad, const float* const* b, const int64_t* bs,
                                             int64_t G, int64_t R, int64_t W, int64_t pw, float* c) {
  WgVec s[NV][kWgB];
  for (int v = 0; v < NV; v++)
    for (int q = 0; q < kWgB; q++) s[v][q] = *reinterpret_cast<const WgVecU*>(c + q * dnPad + v * kWgV);
  const float* a = at;
  for (int64_t gr = 0; gr < G * R; gr++, a += W * dnPad) {
    const float* bp[kWgB];
    for (int q = 0; q < kWgB; q++) bp[q] = b[q] + (gr / R) * bs[q] + (gr % R) * pw;
    for (int64_t p = 0; p < W; p++) {
      WgVec av[NV];
      for (int v = 0; v < NV; v++) av[v] = *reinterpret_cast<const WgVecU*>(a + p * dnPad + v * kWgV);
      for (int q = 0; q < kWgB; q++) {
        WgVec bv = splat<WgVec>(bp[q][p]);
#if defined(__x86_64__)
        asm("" : "+v"(bv));  // one broadcast per column value, kept for its NV uses
#endif
        for (int v = 0; v < NV; v++) s[v][q] += av[v] * bv;
      }
    }
  }
  for (int v = 0; v < NV; v++)
    for (int q = 0; q < kWgB; q++) *reinterpret_cast<WgVecU*>(c + q * dnPad + v * kWgV) = s[v][q];
}

// Phase 2, one unit: a range of column blocks on the current group (their planes built as they are reached).
static void wgColumns(const WgJob& j, int64_t u) {
  const int64_t cb0 = j.cblocks * u / j.units, cb1 = j.cblocks * (u + 1) / j.units;
  if (cb0 >= cb1) return;
  const int64_t T = j.kh * j.kw, P = j.P, cFirst = cb0 * kWgB / T;
  const int64_t cLast = std::min(j.sn - 1, (cb1 * kWgB - 1) / T);  // the last channel this unit reads
  float* pb = j.planes + u * j.unitPlaneFloats;  // channel c's planes at (c - cFirst) chanStride
  int64_t built = cFirst;
  for (int64_t cb = cb0; cb < cb1; cb++) {
    const float* bp[kWgB];
    int64_t bs[kWgB];
    for (int q = 0; q < kWgB; q++) {
      const int64_t col = cb * kWgB + q, c = col / T, t = col % T, ti = t / j.kw, tj = t % j.kw;
      if (col >= j.cols) {
        bp[q] = j.zero, bs[q] = 0;
        continue;
      }
      if (j.mode == WgJob::kDirect) {
        bp[q] = j.s + (j.n0 * j.sn + c) * P, bs[q] = j.sn * P;
        continue;
      }
      while (built <= c) {
        // NCHW: channel `built`'s planes. Blocked: those of every channel of its block that this unit uses,
        // from rows of B lanes read once (reading one lane at a time touched a cache line per value).
        const int64_t es = j.sb ? j.sb : 1, c0 = built / es * es;
        const int64_t hi = es == 1 ? built : std::min({c0 + es, j.sn, cLast + 1}) - 1;
        for (int64_t g = 0; g < j.g1; g++) {
          const float* src = j.s + ((j.n0 + g) * j.sn + c0) * j.srcH * j.srcW;  // the channel or its block
          for (int64_t pl = 0; pl < j.nplanes; pl++) {
            float* dst = pb + (built - cFirst) * j.chanStride + g * j.sampleStride + pl * j.planeLen;
            const bool shift = j.mode == WgJob::kShift;
            const int64_t pi = pl / j.kw, offX = shift ? j.offXmin : j.offX0 + j.sign * (pl % j.kw);
            for (int64_t r = 0; r < j.gh + j.ext; r++) {
              const int64_t sy = shift ? r + j.offYmin : r * j.stepY + j.offY0 + j.sign * pi;
              const float* row = sy >= 0 && sy < j.srcH ? src + sy * j.srcW * es : nullptr;
              if (es == 1) {
                shiftedRow(dst + r * j.pw, row, j.pw, j.stepX, offX, j.srcW);
                continue;
              }
              const int64_t l0 = built - c0, nl = hi + 1 - built;
#if defined(__AVX512F__)
              if (es == 16) {
                // Plane columns px = 16 at a time: their source positions sx = px stepX + offX (zero outside
                // the row, or the whole row outside x) read as rows of 16 lanes, transposed into the lanes'
                // plane rows.
                for (int64_t px0 = 0; px0 < j.pw; px0 += 16) {
                  const int64_t w = std::min<int64_t>(16, j.pw - px0);
                  __m512 v[16];
                  for (int i = 0; i < 16; i++) {
                    const int64_t sx = (px0 + i) * j.stepX + offX;
                    const bool in = row && i < w && sx >= 0 && sx < j.srcW;
                    v[i] = in ? _mm512_loadu_ps(row + sx * 16) : _mm512_setzero_ps();
                  }
                  transpose16(v);
                  const __mmask16 m = __mmask16((1u << w) - 1u);
                  for (int i = 0; i < 16; i++) {
                    const int64_t l = kTr16Order[i] - l0;
                    if (l < 0 || l >= nl) continue;
                    _mm512_mask_storeu_ps(dst + l * j.chanStride + r * j.pw + px0, m, v[i]);
                  }
                }
                continue;
              }
#endif
              for (int64_t px = 0; px < j.pw; px++) {
                const int64_t sx = px * j.stepX + offX;
                const float* v = row && sx >= 0 && sx < j.srcW ? row + sx * es + l0 : nullptr;
                float* d = dst + r * j.pw + px;
                for (int64_t l = 0; l < nl; l++) d[l * j.chanStride] = v ? v[l] : 0.f;
              }
            }
          }
        }
        built = hi + 1;
      }
      const float* chan = pb + (c - cFirst) * j.chanStride;
      bp[q] = j.mode == WgJob::kShift
                  ? chan + (j.offY0 + j.sign * ti - j.offYmin) * j.pw + (j.offX0 + j.sign * tj - j.offXmin)
                  : chan + t * j.planeLen;
      bs[q] = j.sampleStride;
    }
    float* c = j.sums + cb * kWgB * j.dnPad;
    const int64_t dv = j.dnPad / kWgV;
    int64_t v = 0;
    auto tile = [&](auto nv) {
      wgTile<decltype(nv)::value>(j.at + v * kWgV, j.dnPad, bp, bs, j.g1, j.rows, j.width, j.pw, c + v * kWgV);
      v += decltype(nv)::value;
    };
    // 64 channels as two tiles of 2 vectors, not 3 and a 1-vector tail (one load per multiply-add there):
    // 4-6% faster on S's 64-channel layers, paired runs.
    if (dv != 4)
      while (v + kWgNV <= dv) tile(std::integral_constant<int, kWgNV>{});
    while (v + 2 <= dv) tile(std::integral_constant<int, 2>{});
    while (v < dv) tile(std::integral_constant<int, 1>{});
  }
}

static void* convWeightGradCreate(const CustomOpAbi*, OrtApiTable, const OrtKernelInfo* info) {
  auto* k = new ConvWeightGradKernel();
  for (const auto& [name, out] : {std::pair<const char*, int64_t*>{"kh", &k->kh}, {"kw", &k->kw}, {"sh", &k->sh},
                                  {"sw", &k->sw}, {"pt", &k->pt}, {"pl", &k->pl}, {"xblock", &k->xblock},
                                  {"dyblock", &k->dyblock}})
    attr(info, name, out);
  return k;
}

static void convWeightGradCompute(void* kernel, OrtKernelContext* ctx) {
  const auto* k = static_cast<const ConvWeightGradKernel*>(kernel);
  std::vector<int64_t> xd, dd;  // [N, C, H, W], [N, O, OH, OW]
  const float* x = inputOf(ctx, 0, &xd);
  const float* dy = inputOf(ctx, 1, &dd);
  const int64_t n = xd[0], c = xd[1], h = xd[2], w = xd[3], o = dd[1], oh = dd[2], ow = dd[3], T = k->kh * k->kw;
  float* dw = outputOf(ctx, 0, {o, c, k->kh, k->kw});
  const bool stride1 = k->sh == 1 && k->sw == 1;
  // x direct when the conv keeps its grid and has more input than output channels: fewer planes to build (a
  // 1x1 conv's too when x is blocked, so that its planes are dy's: 0.86-0.99 of the time, paired).
  const bool swapped = stride1 && oh == h && ow == w && c > o && (T > 1 || k->xblock);
  WgJob j{};
  j.n = n, j.kh = k->kh, j.kw = k->kw;
  if (swapped) {
    j.d = x, j.dn = c, j.s = dy, j.sn = o, j.gh = h, j.gw = w, j.srcH = oh, j.srcW = ow;
    j.stepY = j.stepX = 1, j.offY0 = k->pt, j.offX0 = k->pl, j.sign = -1;
    j.db = k->xblock, j.sb = k->dyblock;
  } else {
    j.d = dy, j.dn = o, j.s = x, j.sn = c, j.gh = oh, j.gw = ow, j.srcH = h, j.srcW = w;
    j.stepY = k->sh, j.stepX = k->sw, j.offY0 = -k->pt, j.offX0 = -k->pl, j.sign = 1;
    j.db = k->dyblock, j.sb = k->xblock;
  }
  j.P = j.gh * j.gw;
  const bool same = stride1 && T == 1 && k->pt == 0 && k->pl == 0 && oh == h && ow == w;
  // A blocked shifted side is never read in place: a 1x1 conv's x gets planes (one tap) too.
  j.mode = same && !j.sb ? WgJob::kDirect : stride1 ? WgJob::kShift : WgJob::kTaps;
  j.dnPad = (j.dn + 15) / 16 * 16;
  j.G = std::min<int64_t>(n, std::max<int64_t>(1, kWgAtBytes / (j.P * j.dnPad * 4)));
  j.cols = j.sn * T, j.cblocks = (j.cols + kWgB - 1) / kWgB, j.units = std::min(j.cblocks, kWgUnits);
  // Stride 1: one plane per channel and sample, x's rows padded by kh - 1 rows and kw - 1 columns of zeros,
  // so that every tap is an offset into it; the tiles walk its rows (pw apart) over the grid's width.
  // Otherwise one run of P positions per tap (R = 1).
  const bool padded = j.mode == WgJob::kShift;
  j.ext = padded ? j.kh - 1 : 0;
  j.pw = padded ? j.gw + j.kw - 1 : j.gw;
  j.rows = padded ? j.gh : 1, j.width = padded ? j.gw : j.P;
  j.nplanes = j.mode == WgJob::kDirect ? 0 : padded ? 1 : T;
  j.planeLen = (j.gh + j.ext) * j.pw;
  j.sampleStride = j.nplanes * j.planeLen;
  // A blocked shifted side's planes are built a block of channels at a time: at most kWgPlaneBytes of them per
  // group, so that they are still in cache when the tiles read them (stride 2: 9 planes per channel).
  const int64_t blockPlaneBytes = (j.sb ? j.sb : 1) * std::max<int64_t>(1, j.sampleStride) * 4;
  j.G = std::min<int64_t>(j.G, std::max<int64_t>(1, kWgPlaneBytes / blockPlaneBytes));
  j.chanStride = j.G * j.sampleStride;
  j.offYmin = std::min(j.offY0, j.offY0 + j.sign * (j.kh - 1));
  j.offXmin = std::min(j.offX0, j.offX0 + j.sign * (j.kw - 1));
  // Threads take ranges of samples, each range with its own At, planes (every channel's) and sums, added at
  // the end: no barrier between groups, and no thread reads At rows another core wrote (one barrier per group
  // and split column blocks had cost 5-16% on S's 3x3 layers, 43% on a 1x1, paired runs of one node). Below
  // two samples per range the columns are split instead, on one range.
  const int64_t U = std::clamp<int64_t>(std::min<int64_t>(n / 2, std::thread::hardware_concurrency()), 1, 8);
  if (U > 1) j.units = 1;
  const int64_t unitChannels = U > 1 ? j.sn + 2 : ((j.cblocks + j.units - 1) / j.units) * kWgB / T + 2;
  j.unitPlaneFloats = (unitChannels * j.chanStride + 15) / 16 * 16;
  const int64_t atFloats = (j.G * j.P * j.dnPad + 15) / 16 * 16, sumFloats = j.cblocks * kWgB * j.dnPad;
  const int64_t rangeFloats = atFloats + sumFloats + j.units * j.unitPlaneFloats;  // At, sums, planes
  // Scratch shared by every ConvWeightGrad node (one runs at a time; the lock keeps it so), kept between runs.
  static std::mutex lock;
  static std::vector<float> scratch, zero;
  std::lock_guard<std::mutex> hold(lock);
  if (int64_t(scratch.size()) < U * rangeFloats + 16) scratch.resize(size_t(U * rangeFloats + 16));
  float* base = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch.data()) + 63) & ~uintptr_t(63));
  if (int64_t(zero.size()) < j.P + 16) zero.assign(size_t(j.P + 16), 0.f);
  j.zero = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(zero.data()) + 63) & ~uintptr_t(63));
  const auto rangeOf = [&](WgJob& r, int64_t u) {  // range u's scratch, its sums cleared
    r.at = base + u * rangeFloats, r.sums = r.at + atFloats, r.planes = r.sums + sumFloats;
    std::fill(r.sums, r.sums + sumFloats, 0.f);
  };
  if (U > 1) {
    struct Ranges {
      const WgJob* j;
      const decltype(rangeOf)* of;
      int64_t U;
    } ranges{&j, &rangeOf, U};
    parallelUnits(
        ctx, &ranges,
        [](const void* rr, int64_t u) {
          const auto& q = *static_cast<const Ranges*>(rr);
          WgJob r = *q.j;
          (*q.of)(r, u);
          const int64_t s1 = r.n * (u + 1) / q.U;
          for (r.n0 = r.n * u / q.U; r.n0 < s1; r.n0 += r.G) {
            r.g1 = std::min(r.G, s1 - r.n0);
            for (int64_t b = 0; b < r.dnPad / 16; b++) wgTransposeBlock(r, b);
            wgColumns(r, 0);
          }
        },
        U, int64_t(1) << 20);
    // The ranges' sums added into the first's, in chunks of 16K floats.
    struct Add {
      float* base;
      int64_t rangeFloats, atFloats, sumFloats, U;
    } add{base, rangeFloats, atFloats, sumFloats, U};
    parallelUnits(
        ctx, &add,
        [](const void* aa, int64_t i) {
          const auto& q = *static_cast<const Add*>(aa);
          const int64_t f0 = i * 16384, f1 = std::min(q.sumFloats, f0 + 16384);
          float* dst = q.base + q.atFloats;
          for (int64_t u = 1; u < q.U; u++) {
            const float* src = q.base + u * q.rangeFloats + q.atFloats;
#pragma omp simd
            for (int64_t f = f0; f < f1; f++) dst[f] += src[f];
          }
        },
        (sumFloats + 16383) / 16384, 16384 * (U - 1));
    j.sums = base + atFloats;
  } else {
    rangeOf(j, 0);
    for (j.n0 = 0; j.n0 < n; j.n0 += j.G) {
      j.g1 = std::min(j.G, n - j.n0);
      // One task per unit (parallelUnits batches units only below 32K floats of work each).
      parallelUnits(ctx, &j, [](const void* jj, int64_t i) { wgTransposeBlock(*static_cast<const WgJob*>(jj), i); },
                    j.dnPad / 16, 32768);
      parallelUnits(ctx, &j, [](const void* jj, int64_t i) { wgColumns(*static_cast<const WgJob*>(jj), i); },
                    j.units, 32768);
    }
  }
  // The sums [column, D] into the weight's layout. Swapped: dw[(sc dn + d) T + t], a column's writes T floats
  // apart within one output channel's block. Else dw[d cols + column], in 16 x 16 tiles: column by column, the
  // writes of a 256-channel layer's weights were 9 KB apart (2 ms of its 15, against 0.85 in tiles).
  if (swapped) {
    for (int64_t col = 0; col < j.cols; col++) {
      const float* src = j.sums + col * j.dnPad;
      float* out = dw + (col / T) * j.dn * T + col % T;
      for (int64_t d = 0; d < j.dn; d++) out[d * T] = src[d];
    }
  } else {
    for (int64_t c0 = 0; c0 < j.cols; c0 += 16)
      for (int64_t d0 = 0; d0 < j.dn; d0 += 16)
        for (int64_t col = c0; col < std::min(j.cols, c0 + 16); col++)
          for (int64_t d = d0; d < std::min(j.dn, d0 + 16); d++) dw[d * j.cols + col] = j.sums[col * j.dnPad + d];
  }
}

static const CustomOpAbi convWeightGradOp = fusedOp<ConvWeightGradKernel, 2, 1>(
    [](const CustomOpAbi*) -> const char* { return "ConvWeightGrad"; }, convWeightGradCreate, convWeightGradCompute);

// ---- DropoutMul kernel ----
// DropoutMul(x [N, ...], key [3]; p, site) -> y = x * mask, the mask made here from a counter-based hash
// (src/train/dropoutMask.ts, which fills the same values for engines without this kernel): value e of the
// site's mask over the whole batch, e = key[2] * (values per image) + i, comes from word w = e / 2:
// h = fmix32(w * 0x9E3779B9 + siteKey), siteKey = fmix32(k ^ (site + 1) * 0x9E3779B9), k = key[0] +
// key[1] * 2^16; the low (even e) or high (odd e) 16 bits u drop the value when u < round(p 2^16), else
// scale it by 2^16 / (2^16 - round(p 2^16)). The backward is the same kernel on dy (graph pass
// kernel-dropout), so the mask is never stored. With `block` B, x and y are in ORT's blocked layout
// [N, C/B, H, W, B] and each value keeps its NCHW index i (the same mask as the NCHW graph's).
struct DropoutKernel {
  float p = 0.1f;
  int64_t site = 0, block = 0;
};
struct DropoutJob {
  const float* x;
  float* y;
  uint32_t key, thresh;
  float scale;
  int64_t first, n;
  int64_t channels, inner;  // the blocked layout: C, H*W
};
static inline uint32_t fmix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  return h ^ (h >> 16);
}
static constexpr int64_t kDropoutUnit = 8192;  // values per parallel unit
// x times mask value e of the site (key: the site's key), as x times the fed mask (signed zeros, NaN).
static inline float dropoutValue(float x, uint32_t e, uint32_t key, uint32_t thresh, float scale) {
  const uint32_t h = fmix32((e >> 1) * 0x9e3779b9u + key);
  const uint32_t u = (e & 1u) ? h >> 16 : h & 0xffffu;
  return x * (u < thresh ? 0.f : scale);
}
// Each value hashes its own word (no state from value to value), so units split anywhere; e is taken
// modulo 2^32, as the JS fill does (no site reaches 2^32 values).
static void dropoutUnit(const DropoutJob& j, int64_t unit) {
  const int64_t from = unit * kDropoutUnit, to = std::min(j.n, from + kDropoutUnit);
  const uint32_t e0 = uint32_t(uint64_t(j.first) + uint64_t(from)), key = j.key, thresh = j.thresh;
  const float scale = j.scale;
  const float* x = j.x + from;
  float* y = j.y + from;
  for (int64_t i = 0; i < to - from; i++) y[i] = dropoutValue(x[i], e0 + uint32_t(i), key, thresh, scale);
}
// The blocked layout, one unit per (sample, block of B channels): value (p, l) of block cb of sample n has
// the NCHW index n C HW + (cb B + l) HW + p.
template <int B>
static void dropoutBlock(const DropoutJob& j, int64_t unit) {
  const int64_t cb = j.channels / B, n = unit / cb, hw = j.inner;
  const uint32_t e0 = uint32_t(uint64_t(j.first) + uint64_t(n * j.channels * hw + unit % cb * B * hw));
  const uint32_t key = j.key, thresh = j.thresh;
  const float scale = j.scale;
  const float* x = j.x + unit * hw * B;
  float* y = j.y + unit * hw * B;
  for (int64_t p = 0; p < hw; p++)
#pragma omp simd
    for (int l = 0; l < B; l++) y[p * B + l] = dropoutValue(x[p * B + l], e0 + uint32_t(l * hw + p), key, thresh, scale);
}
static void* dropoutCreate(const CustomOpAbi*, OrtApiTable, const OrtKernelInfo* info) {
  auto* k = new DropoutKernel();
  attr(info, "p", &k->p);
  attr(info, "site", &k->site);
  attr(info, "block", &k->block);
  return k;
}
static void dropoutCompute(void* kernel, OrtKernelContext* ctx) {
  const auto* k = static_cast<const DropoutKernel*>(kernel);
  std::vector<int64_t> dims;
  DropoutJob j{};
  j.x = inputOf(ctx, 0, &dims);
  const float* key = inputOf(ctx, 1);
  j.y = outputOf(ctx, 0, dims);
  j.n = 1;
  for (int64_t d : dims) j.n *= d;
  const int64_t perImage = dims.empty() || dims[0] == 0 ? 0 : j.n / dims[0];
  // The key's halves and the first image are integers below 2^24, exact in float32.
  const uint32_t stepKey = uint32_t(key[0]) | (uint32_t(key[1]) << 16);
  j.key = fmix32(stepKey ^ (uint32_t(k->site + 1) * 0x9e3779b9u));
  j.first = int64_t(key[2]) * perImage;
  j.thresh = uint32_t(std::lround(double(k->p) * 65536.0));
  j.scale = float(65536.0 / double(65536 - j.thresh));
  if (k->block == 8 || k->block == 16) {  // [N, C, H, W] with whole blocks (the graph builder checks)
    j.channels = dims[1], j.inner = innerOf(dims);
    auto block16 = [](const void* jj, int64_t i) { dropoutBlock<16>(*static_cast<const DropoutJob*>(jj), i); };
    auto block8 = [](const void* jj, int64_t i) { dropoutBlock<8>(*static_cast<const DropoutJob*>(jj), i); };
    parallelUnits(ctx, &j, k->block == 16 ? +block16 : +block8, dims[0] * (j.channels / k->block),
                  j.inner * k->block);
    return;
  }
  parallelUnits(ctx, &j, [](const void* jj, int64_t i) { dropoutUnit(*static_cast<const DropoutJob*>(jj), i); },
                (j.n + kDropoutUnit - 1) / kDropoutUnit, kDropoutUnit);
}
static const CustomOpAbi dropoutOp = fusedOp<DropoutKernel, 2, 1>(
    [](const CustomOpAbi*) -> const char* { return "DropoutMul"; }, dropoutCreate, dropoutCompute);

// ---- Node-API surface ----
#define NAPI(call)                                                   \
  do {                                                               \
    if ((call) != napi_ok) {                                         \
      napi_throw_error(e, nullptr, "ortnative: Node-API call failed: " #call); \
      return nullptr;                                                \
    }                                                                \
  } while (0)

static std::string str(napi_env e, napi_value v) {
  size_t len = 0;
  napi_get_value_string_utf8(e, v, nullptr, 0, &len);
  std::string s(len, '\0');
  napi_get_value_string_utf8(e, v, s.data(), len + 1, &len);
  return s;
}

static napi_value strArray(napi_env e, const std::vector<std::string>& xs) {
  napi_value arr;
  napi_create_array_with_length(e, xs.size(), &arr);
  for (size_t i = 0; i < xs.size(); i++) {
    napi_value s;
    napi_create_string_utf8(e, xs[i].c_str(), xs[i].size(), &s);
    napi_set_element(e, arr, uint32_t(i), s);
  }
  return arr;
}

struct Session {
  OrtSession* s = nullptr;
  std::vector<std::string> inputs, outputs;
};

// The Session behind a handle from createSession (a JS error and nullptr if it is not one, or, with
// `live`, if it was released).
static Session* sessionOf(napi_env e, napi_value v, bool live) {
  Session* sess = nullptr;
  napi_valuetype t;
  if (napi_typeof(e, v, &t) != napi_ok || t != napi_external ||
      napi_get_value_external(e, v, reinterpret_cast<void**>(&sess)) != napi_ok) {
    napi_throw_type_error(e, nullptr, "ortnative: expected a session handle from createSession");
    return nullptr;
  }
  if (live && !sess->s) {
    napi_throw_error(e, nullptr, "ortnative: a released session cannot be used");
    return nullptr;
  }
  return sess;
}

// init(libonnxruntimePath) -> ONNX Runtime's version string. Idempotent.
// The shared arena: ORT's BFC allocator with its default growth (each new region twice the last) capped at
// 16 MB per region instead of ORT's 1 GB. A session's own arena at its default grows to regions of hundreds of
// MB that stay mostly free: L training at batch 64 peaked at 5037 MB with it, 4526 MB with this (4575 with a
// 64 MB cap, 4630 with 256 MB; bench/README.md "Memory"), at the same step time in paired runs.
struct OrtArenaCfg;
static void registerSharedArena() {
  const char* keys[] = {"arena_extend_strategy", "max_power_of_two_extend_bytes"};
  const size_t values[] = {0 /* kNextPowerOfTwo */, size_t(16) << 20};
  OrtArenaCfg* cfg = nullptr;
  OrtMemoryInfo* info = nullptr;
  auto release = ORT(kReleaseStatus, void (*)(OrtStatus*));
  OrtStatus* st = ORT(kCreateArenaCfgV2, OrtStatus * (*)(const char* const*, const size_t*, size_t, OrtArenaCfg**))(
      keys, values, 2, &cfg);
  // OrtArenaAllocator = 1, OrtMemTypeDefault = 0: the memory info an arena is registered under.
  if (!st) st = ORT(kCreateCpuMemoryInfo, OrtStatus * (*)(int, int, OrtMemoryInfo**))(1, 0, &info);
  if (!st)
    st = ORT(kCreateAndRegisterAllocator, OrtStatus * (*)(OrtEnv*, const OrtMemoryInfo*, const OrtArenaCfg*))(env, info, cfg);
  if (cfg) ORT(kReleaseArenaCfg, void (*)(OrtArenaCfg*))(cfg);
  if (st) return release(st);  // info stays: the registered allocator may refer to it
  sharedArena = true;
}

// ---- Attention and AttentionGrad (native/attention.cc) ----
struct AttnKernel {
  float scale = 1.f;
};
static void* attnCreate(const CustomOpAbi*, OrtApiTable, const OrtKernelInfo* info) {
  auto* k = new AttnKernel();
  attr(info, "scale", &k->scale);
  return k;
}
// The job's sizes from q [B, D, L], k [B, D, Lk], v [B, Dv, Lk]; false for sizes the kernels do not take (the
// graph builder never makes them), whose outputs are then NaN.
static bool attnJobOf(OrtKernelContext* ctx, const AttnKernel* k, AttnJob& j) {
  std::vector<int64_t> qd, kd, vd;
  j.q = inputOf(ctx, 0, &qd), j.k = inputOf(ctx, 1, &kd), j.v = inputOf(ctx, 2, &vd);
  j.scale = k->scale;
  if (qd.size() != 3 || kd.size() != 3 || vd.size() != 3) return false;
  j.b = qd[0], j.d = qd[1], j.l = qd[2], j.lk = kd[2], j.dv = vd[1];
  return kd[0] == j.b && vd[0] == j.b && kd[1] == j.d && vd[2] == j.lk && attnShapesOk(j.d, j.dv, j.l, j.lk);
}
static void fillNaN(float* p, int64_t n) { std::fill(p, p + n, std::numeric_limits<float>::quiet_NaN()); }
static void attnCompute(void* kernel, OrtKernelContext* ctx) {
  AttnJob j{};
  const bool ok = attnJobOf(ctx, static_cast<const AttnKernel*>(kernel), j);
  j.out = outputOf(ctx, 0, {j.b, j.dv, j.l});
  j.outLse = outputOf(ctx, 1, {j.b, j.l});
  if (!ok) return fillNaN(j.out, j.b * j.dv * j.l), fillNaN(j.outLse, j.b * j.l);
  parallelUnits(ctx, &j, [](const void* jj, int64_t u) { attnForwardUnit(*static_cast<const AttnJob*>(jj), u); },
                attnForwardUnits(j), int64_t(1) << 20);
}
static void attnGradCompute(void* kernel, OrtKernelContext* ctx) {
  AttnJob j{};
  const bool ok = attnJobOf(ctx, static_cast<const AttnKernel*>(kernel), j);
  j.o = inputOf(ctx, 3), j.lse = inputOf(ctx, 4), j.dO = inputOf(ctx, 5);
  j.dq = outputOf(ctx, 0, {j.b, j.d, j.l});
  j.dk = outputOf(ctx, 1, {j.b, j.d, j.lk});
  j.dvOut = outputOf(ctx, 2, {j.b, j.dv, j.lk});
  if (!ok) return fillNaN(j.dq, j.b * j.d * j.l), fillNaN(j.dk, j.b * j.d * j.lk), fillNaN(j.dvOut, j.b * j.dv * j.lk);
  parallelUnits(ctx, &j, [](const void* jj, int64_t n) { attnBackwardUnit(*static_cast<const AttnJob*>(jj), n); },
                j.b, int64_t(1) << 20);
}
static const CustomOpAbi attnOp = fusedOp<AttnKernel, 3, 2>(
    [](const CustomOpAbi*) -> const char* { return "Attention"; }, attnCreate, attnCompute);
static const CustomOpAbi attnGradOp = fusedOp<AttnKernel, 6, 3>(
    [](const CustomOpAbi*) -> const char* { return "AttentionGrad"; }, attnCreate, attnGradCompute);

// ---- ConvWinograd and ConvWinogradSum (native/winograd.cc) ----
// ConvWinograd(x [N, C, H, W], u [P, C, K], bias [K]; block) -> y [N, K, H, W], x and y in ORT's NCHWc layout of
// `block` (16 or 8) channels: a 3x3, stride-1, pad-1 convolution whose filters were transformed to u (when the
// graph was built, or by WinogradFilter in a training graph; P = 16 for F(2x2, 3x3), 36 for F(4x4, 3x3));
// ConvWinogradSum adds a fourth input (a residual, blocked) to its output.
struct WinoKernel {
  int64_t block = 16;  // the layout's channel block: 16, or 8 (AVX2's NCHW8c)
};
static void* winoCreate(const CustomOpAbi*, OrtApiTable, const OrtKernelInfo* info) {
  auto* k = new WinoKernel();
  attr(info, "block", &k->block);
  return k;
}
static void winoComputeWith(void* kernel, OrtKernelContext* ctx, bool withSum, bool bf16) {
  std::vector<int64_t> xd, ud, bd, sd;
  WinoJob j{};
  j.block = static_cast<const WinoKernel*>(kernel)->block;
  j.x = inputOf(ctx, 0, &xd), j.bias = inputOf(ctx, 2, &bd);
  const float* u = inputOf(ctx, 1, &ud);
  if (bf16)
    j.ub = reinterpret_cast<const uint32_t*>(u);
  else
    j.u = u;
  j.sum = withSum ? inputOf(ctx, 3, &sd) : nullptr;
  const bool shaped = xd.size() == 4 && ud.size() == 3;
  j.n = shaped ? xd[0] : 0, j.c = shaped ? xd[1] : 0, j.h = shaped ? xd[2] : 0, j.w = shaped ? xd[3] : 0;
  j.k = shaped ? ud[2] : 0;
  j.m = shaped && ud[0] == winoPositions(4) ? 4 : 2;  // u's positions give the tile: 16 for F(2x2), 36 for F(4x4)
  j.y = outputOf(ctx, 0, {j.n, j.k, j.h, j.w});
  // bf16: u [P, C/2, K] words of two bfloat16 filters, 16-channel blocks, a build with AVX-512 BF16.
  const bool ok = shaped && ud[0] == winoPositions(j.m) && ud[1] * (bf16 ? 2 : 1) == j.c && bd.size() == 1 &&
                  bd[0] == j.k && (!withSum || sd == std::vector<int64_t>{j.n, j.k, j.h, j.w}) &&
                  winoShapesOk(j.m, j.block, j.c, j.k, j.h, j.w) && (!bf16 || (winoBf16() && j.block == 16));
  if (!ok) return fillNaN(j.y, j.n * j.k * j.h * j.w);
  const int64_t units = winoUnits(j);
  parallelUnits(ctx, &j, [](const void* jj, int64_t u) { winoUnit(*static_cast<const WinoJob*>(jj), u); }, units,
                int64_t(1) << 20);
}
// WinogradFilter(w [K, C, 3, 3]; flip, m) -> u [P, C, K] (flip: [P, K, C], the filters of the conv's input
// gradient; P = (m + 2)^2), the filters as ConvWinograd takes them (G g G^T): a training graph's filters change
// every step.
struct WinoFilterKernel {
  int64_t flip = 0, m = 2;
};
struct WinoFilterJob {
  const float* w;
  float* u;
  int64_t k, c, m;
  bool flip;
};
static void* winoFilterCreate(const CustomOpAbi*, OrtApiTable, const OrtKernelInfo* info) {
  auto* k = new WinoFilterKernel();
  attr(info, "flip", &k->flip);
  attr(info, "m", &k->m);
  return k;
}
static void winoFilterCompute(void* kernel, OrtKernelContext* ctx) {
  std::vector<int64_t> wd;
  WinoFilterJob j{};
  j.w = inputOf(ctx, 0, &wd);
  const auto* kk = static_cast<const WinoFilterKernel*>(kernel);
  j.flip = kk->flip != 0, j.m = kk->m == 4 ? 4 : 2;
  const bool ok = wd.size() == 4 && wd[2] == 3 && wd[3] == 3;
  j.k = ok ? wd[0] : 0, j.c = ok ? wd[1] : 0;
  const int64_t P = winoPositions(j.m);
  j.u = j.flip ? outputOf(ctx, 0, {P, j.k, j.c}) : outputOf(ctx, 0, {P, j.c, j.k});
  if (!ok) return;
  parallelUnits(
      ctx, &j,
      [](const void* jj, int64_t b) {
        const auto& f = *static_cast<const WinoFilterJob*>(jj);
        winoFilterUnit(f.m, f.w, f.k, f.c, f.flip, b, f.u);
      },
      winoFilterUnits(j.k, j.c, j.flip), P * 16 * j.c);
}
// ConvWinogradWeightGrad(x [N, C, H, W], dy [N, K, H, W], both in ORT's NCHWc layout of `block` channels; m,
// block) -> dw [K, C, 3, 3]: the weight gradient of a 3x3, stride-1, pad-1 convolution, as Winograd
// F(3x3, m x m) (native/winograd.cc): ranges of the batch's tiles summed per thread in the transformed domain,
// then one output transform per filter.
struct WinoGradKernel {
  int64_t m = 2, block = 16;
};
static void* winoGradCreate(const CustomOpAbi*, OrtApiTable, const OrtKernelInfo* info) {
  auto* k = new WinoGradKernel();
  attr(info, "m", &k->m);
  attr(info, "block", &k->block);
  return k;
}
static void winoGradCompute(void* kernel, OrtKernelContext* ctx) {
  std::vector<int64_t> xd, dd;
  WinoGradJob j{};
  j.m = static_cast<const WinoGradKernel*>(kernel)->m == 4 ? 4 : 2;
  j.block = static_cast<const WinoGradKernel*>(kernel)->block;
  j.x = inputOf(ctx, 0, &xd), j.dy = inputOf(ctx, 1, &dd);
  const bool shaped = xd.size() == 4 && dd.size() == 4;
  j.n = shaped ? xd[0] : 0, j.c = shaped ? xd[1] : 0, j.h = shaped ? xd[2] : 0, j.w = shaped ? xd[3] : 0;
  j.k = shaped ? dd[1] : 0;
  j.dw = outputOf(ctx, 0, {j.k, j.c, 3, 3});
  const bool ok =
      shaped && dd[0] == j.n && dd[2] == j.h && dd[3] == j.w && winoShapesOk(j.m, j.block, j.c, j.k, j.h, j.w);
  if (!ok) return fillNaN(j.dw, j.k * j.c * 9);
  winoGradPlan(j, std::max<int64_t>(1, std::thread::hardware_concurrency()));
  // The ranges' sums, shared by every node of this op (one runs at a time; the lock keeps it so).
  static std::mutex lock;
  static std::vector<float> scratch;
  std::lock_guard<std::mutex> hold(lock);
  const int64_t floats = j.ranges * winoPositions(j.m) * j.k * j.c;
  if (int64_t(scratch.size()) < floats) scratch.resize(size_t(floats));
  j.s = scratch.data();
  parallelUnits(ctx, &j, [](const void* jj, int64_t r) { winoGradRange(*static_cast<const WinoGradJob*>(jj), r); },
                j.ranges, int64_t(1) << 20);
  parallelUnits(ctx, &j, [](const void* jj, int64_t k) { winoGradOutput(*static_cast<const WinoGradJob*>(jj), k); },
                j.k, winoPositions(j.m) * j.c * j.ranges);
}
static const CustomOpAbi winoGradOp = fusedOp<WinoGradKernel, 2, 1>(
    [](const CustomOpAbi*) -> const char* { return "ConvWinogradWeightGrad"; }, winoGradCreate, winoGradCompute);
static const CustomOpAbi winoFilterOp = fusedOp<WinoFilterKernel, 1, 1>(
    [](const CustomOpAbi*) -> const char* { return "WinogradFilter"; }, winoFilterCreate, winoFilterCompute);
static const CustomOpAbi winoOp = fusedOp<WinoKernel, 3, 1>(
    [](const CustomOpAbi*) -> const char* { return "ConvWinograd"; }, winoCreate,
    [](void* k, OrtKernelContext* ctx) { winoComputeWith(k, ctx, false, false); });
static const CustomOpAbi winoSumOp = fusedOp<WinoKernel, 4, 1>(
    [](const CustomOpAbi*) -> const char* { return "ConvWinogradSum"; }, winoCreate,
    [](void* k, OrtKernelContext* ctx) { winoComputeWith(k, ctx, true, false); });
// ConvWinogradBf16 and ConvWinogradSumBf16: the same with u [P, C/2, K] int32, each word two bfloat16 filters
// (input channel 2q in the low half, 2q + 1 in the high; graph pass winograd-bf16), the products in bfloat16
// summed in float32 (AVX-512 BF16; registered on every build, NaN outputs where the build lacks it).
static const CustomOpAbi winoBf16Op = fusedOp<WinoKernel, 3, 1, 1>(
    [](const CustomOpAbi*) -> const char* { return "ConvWinogradBf16"; }, winoCreate,
    [](void* k, OrtKernelContext* ctx) { winoComputeWith(k, ctx, false, true); });
static const CustomOpAbi winoSumBf16Op = fusedOp<WinoKernel, 4, 1, 1>(
    [](const CustomOpAbi*) -> const char* { return "ConvWinogradSumBf16"; }, winoCreate,
    [](void* k, OrtKernelContext* ctx) { winoComputeWith(k, ctx, true, true); });

// The kernels of the "ai.ddpm" domain, registered for every session; kernels() lists their names and the
// capabilities of this build (GroupNormSiluBlockedAnyGroups: the blocked layout with groups straddling
// blocks; ConvWeightGradPreferred, below), so the TypeScript side uses only what this build has (an older
// binary lacks newer kernels).
static const CustomOpAbi* const kFusedOps[] = {&gnOp,      &gnShiftOp,     &gnRecomputeOp,  &gnGradOp,
                                               &im2colOp,  &dropoutOp,     &blockFilterOp,  &sumTransposeOp,
                                               &convWeightGradOp, &attnOp,     &attnGradOp,     &winoOp,
                                               &winoSumOp, &winoFilterOp,  &winoGradOp,     &winoBf16Op,
                                               &winoSumBf16Op};
// ConvWeightGradPreferred: ConvWeightGrad was measured faster than Im2col + MLAS on this build's ISA (AVX-512;
// bench/README.md). Its AVX2 form passes the same tests but has not been timed on an AVX2 machine, so the
// graphs use it there only when asked (DDPM_CONV_WEIGHT_GRAD=1, src/engine/native.ts).
// BlockedTraining: GroupNormSiluGrad, DropoutMul and ConvWeightGrad take ORT's blocked layout (attributes
// block, xblock, dyblock), so a training graph can keep its activations blocked (src/graph/blocked.ts).
// AttentionPreferred: the Attention kernels were measured faster than ORT's MatMul-Softmax-MatMul on this build's
// ISA (AVX-512; bench/README.md, "Attention in one kernel"); their AVX2 form (4 x 2 tiles) is untimed on an
// AVX2 machine, so there the graphs use them only when asked (DDPM_ATTENTION=1).
// WinogradPreferred: ConvWinograd was measured faster than ORT's NCHWc convolution on this build's ISA (AVX-512;
// bench/README.md, "Winograd F(2x2, 3x3)"); it takes the 16-float blocks only, so AVX2's 8-float layout never
// uses it (DDPM_WINOGRAD=1 asks for it where a build has 16-float blocks but not the capability).
// WinogradF4: the Winograd kernels take F(4x4, 3x3) (WinogradFilter and ConvWinogradWeightGrad attribute m = 4,
// ConvWinograd 36-position filters) beside F(2x2, 3x3); the graphs choose per layer (winogradConvs.ts, tileFor).
// WinogradBlock8: ConvWinograd, ConvWinogradSum and ConvWinogradWeightGrad take attribute block = 8 (AVX2's
// NCHW8c layout; 8-float vectors); untimed on an AVX2 machine, so there the graphs use them only when asked.
// WinogradBf16: ConvWinogradBf16 and ConvWinogradSumBf16 compute (a build for a CPU with AVX-512 BF16).
static const char* const kCapabilities[] = {"GroupNormSiluBlockedAnyGroups", "BlockedTraining", "WinogradF4",
                                            "WinogradBlock8",
#if defined(__AVX512F__)
                                            "ConvWeightGradPreferred", "AttentionPreferred", "WinogradPreferred",
#endif
#if defined(__AVX512BF16__)
                                            "WinogradBf16",
#endif
};

static napi_value Kernels(napi_env e, napi_callback_info) {
  napi_value arr;
  napi_create_array(e, &arr);
  uint32_t i = 0;
  for (const CustomOpAbi* op : kFusedOps) {
    napi_value name;
    napi_create_string_utf8(e, op->GetName(op), NAPI_AUTO_LENGTH, &name);
    napi_set_element(e, arr, i++, name);
  }
  for (const char* capability : kCapabilities) {
    napi_value name;
    napi_create_string_utf8(e, capability, NAPI_AUTO_LENGTH, &name);
    napi_set_element(e, arr, i++, name);
  }
  return arr;
}

static napi_value Init(napi_env e, napi_callback_info ci) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI(napi_get_cb_info(e, ci, &argc, argv, nullptr, nullptr));
  if (!api) {
    std::string path = str(e, argv[0]);
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
      napi_throw_error(e, nullptr, (std::string("ortnative: cannot open ") + path + ": " + dlerror()).c_str());
      return nullptr;
    }
    auto getBase = reinterpret_cast<const OrtApiBaseAbi* (*)()>(dlsym(lib, "OrtGetApiBase"));
    if (!getBase) {
      napi_throw_error(e, nullptr, "ortnative: OrtGetApiBase not found in libonnxruntime");
      return nullptr;
    }
    OrtApiTable t = getBase()->GetApi(kApiVersion);
    if (!t) {
      napi_throw_error(e, nullptr, "ortnative: this ONNX Runtime does not offer C API version 17 (ONNX Runtime 1.17 or later needed)");
      return nullptr;
    }
    api = t;
    // Logging level 3 = errors only (ORT's warnings are about its graph rewrites).
    if (!ok(e, ORT(kCreateEnv, OrtStatus * (*)(int, const char*, OrtEnv**))(3, "ddpm", &env), "CreateEnv")) return nullptr;
    // OrtDeviceAllocator = 0, OrtMemTypeDefault = 0.
    if (!ok(e, ORT(kCreateCpuMemoryInfo, OrtStatus * (*)(int, int, OrtMemoryInfo**))(0, 0, &cpuInfo), "CreateCpuMemoryInfo"))
      return nullptr;
    registerSharedArena();
    auto add = ORT(kCustomOpDomainAdd, OrtStatus * (*)(OrtCustomOpDomain*, const CustomOpAbi*));
    if (!ok(e, ORT(kCreateCustomOpDomain, OrtStatus * (*)(const char*, OrtCustomOpDomain**))("ai.ddpm", &domain), "CreateCustomOpDomain"))
      return nullptr;
    for (const CustomOpAbi* op : kFusedOps)
      if (!ok(e, add(domain, op), "CustomOpDomain_Add")) return nullptr;
    apiBase = getBase();
  }
  napi_value v;
  napi_create_string_utf8(e, apiBase->GetVersionString(), NAPI_AUTO_LENGTH, &v);
  return v;
}

static void finalizeSession(napi_env, void* data, void*) {
  auto* s = static_cast<Session*>(data);
  if (s->s) ORT(kReleaseSession, void (*)(OrtSession*))(s->s);
  delete s;
}

static std::vector<std::string> names(OrtSession* s, bool inputs) {
  OrtAllocator* alloc;
  ORT(kGetAllocatorWithDefaultOptions, OrtStatus * (*)(OrtAllocator**))(&alloc);
  size_t n = 0;
  ORT(inputs ? kSessionGetInputCount : kSessionGetOutputCount, OrtStatus * (*)(const OrtSession*, size_t*))(s, &n);
  std::vector<std::string> out;
  for (size_t i = 0; i < n; i++) {
    char* name;
    ORT(inputs ? kSessionGetInputName : kSessionGetOutputName,
        OrtStatus * (*)(const OrtSession*, size_t, OrtAllocator*, char**))(s, i, alloc, &name);
    out.emplace_back(name);
    ORT(kAllocatorFree, OrtStatus * (*)(OrtAllocator*, void*))(alloc, name);
  }
  return out;
}

// createSession(model: Uint8Array, threads, optLevel: 0|1|2|99, profilePrefix: string | null,
//               memArena: 'shared' | 'session' | 'off', memPattern?: boolean) -> { handle, inputs, outputs }
// memArena: the process-wide arena (registerSharedArena), the session's own (ORT's default) or none;
// memPattern false turns off ORT's memory pattern (on by default).
static napi_value CreateSession(napi_env e, napi_callback_info ci) {
  size_t argc = 6;
  napi_value argv[6];
  NAPI(napi_get_cb_info(e, ci, &argc, argv, nullptr, nullptr));
  if (!api) {
    napi_throw_error(e, nullptr, "ortnative: call init() first");
    return nullptr;
  }
  void* bytes;
  size_t len;
  napi_typedarray_type tt;
  napi_value ab;
  size_t off;
  NAPI(napi_get_typedarray_info(e, argv[0], &tt, &len, &bytes, &ab, &off));
  int32_t threads, level;
  NAPI(napi_get_value_int32(e, argv[1], &threads));
  NAPI(napi_get_value_int32(e, argv[2], &level));
  OrtSessionOptions* so;
  if (!ok(e, ORT(kCreateSessionOptions, OrtStatus * (*)(OrtSessionOptions**))(&so), "CreateSessionOptions")) return nullptr;
  auto relSo = ORT(kReleaseSessionOptions, void (*)(OrtSessionOptions*));
  bool good = ok(e, ORT(kSetIntraOpNumThreads, OrtStatus * (*)(OrtSessionOptions*, int))(so, threads), "SetIntraOpNumThreads") &&
              ok(e, ORT(kSetInterOpNumThreads, OrtStatus * (*)(OrtSessionOptions*, int))(so, 1), "SetInterOpNumThreads") &&
              ok(e, ORT(kSetSessionGraphOptimizationLevel, OrtStatus * (*)(OrtSessionOptions*, int))(so, level), "SetSessionGraphOptimizationLevel") &&
              ok(e, ORT(kAddCustomOpDomain, OrtStatus * (*)(OrtSessionOptions*, OrtCustomOpDomain*))(so, domain), "AddCustomOpDomain");
  napi_valuetype pt;
  NAPI(napi_typeof(e, argv[3], &pt));
  if (good && pt == napi_string) {
    std::string prefix = str(e, argv[3]);
    good = ok(e, ORT(kEnableProfiling, OrtStatus * (*)(OrtSessionOptions*, const char*))(so, prefix.c_str()), "EnableProfiling");
  }
  // Arguments not passed read as undefined: ORT's defaults stay.
  auto isFalse = [&](size_t i) {
    if (i >= argc) return false;
    napi_valuetype vt;
    bool b = true;
    return napi_typeof(e, argv[i], &vt) == napi_ok && vt == napi_boolean &&
           napi_get_value_bool(e, argv[i], &b) == napi_ok && !b;
  };
  std::string arena = argc > 4 ? str(e, argv[4]) : "shared";
  if (good && arena == "off")
    good = ok(e, ORT(kDisableCpuMemArena, OrtStatus * (*)(OrtSessionOptions*))(so), "DisableCpuMemArena");
  else if (good && arena == "shared" && sharedArena)
    good = ok(e,
              ORT(kAddSessionConfigEntry, OrtStatus * (*)(OrtSessionOptions*, const char*, const char*))(
                  so, "session.use_env_allocators", "1"),
              "AddSessionConfigEntry");
  else if (good && arena != "shared" && arena != "session") {
    napi_throw_error(e, nullptr, ("ortnative: memArena must be shared, session or off, not " + arena).c_str());
    good = false;
  }
  if (good && isFalse(5))
    good = ok(e, ORT(kDisableMemPattern, OrtStatus * (*)(OrtSessionOptions*))(so), "DisableMemPattern");
  if (!good) return relSo(so), nullptr;
  auto* sess = new Session();
  good = ok(e,
            ORT(kCreateSessionFromArray, OrtStatus * (*)(const OrtEnv*, const void*, size_t, const OrtSessionOptions*, OrtSession**))(
                env, bytes, len, so, &sess->s),
            "CreateSessionFromArray");
  relSo(so);
  if (!good) return delete sess, nullptr;
  sess->inputs = names(sess->s, true);
  sess->outputs = names(sess->s, false);
  napi_value obj, handle;
  NAPI(napi_create_object(e, &obj));
  NAPI(napi_create_external(e, sess, finalizeSession, nullptr, &handle));
  NAPI(napi_set_named_property(e, obj, "handle", handle));
  NAPI(napi_set_named_property(e, obj, "inputs", strArray(e, sess->inputs)));
  NAPI(napi_set_named_property(e, obj, "outputs", strArray(e, sess->outputs)));
  return obj;
}

static bool shapeOf(napi_env e, napi_value arr, std::vector<int64_t>& out) {
  uint32_t n;
  if (napi_get_array_length(e, arr, &n) != napi_ok) return false;
  out.resize(n);
  for (uint32_t i = 0; i < n; i++) {
    napi_value d;
    int64_t v;
    if (napi_get_element(e, arr, i, &d) != napi_ok || napi_get_value_int64(e, d, &v) != napi_ok) return false;
    out[i] = v;
  }
  return true;
}

// A float32 tensor over a JS Float32Array's memory (no copy).
static OrtValue* wrap(napi_env e, napi_value ta, napi_value shape) {
  void* data;
  size_t len;
  napi_typedarray_type tt;
  napi_value ab;
  size_t off;
  std::vector<int64_t> dims;
  if (napi_get_typedarray_info(e, ta, &tt, &len, &data, &ab, &off) != napi_ok || tt != napi_float32_array ||
      !shapeOf(e, shape, dims)) {
    napi_throw_type_error(e, nullptr, "ortnative.run: tensors must be Float32Array with a shape array");
    return nullptr;
  }
  OrtValue* v = nullptr;
  if (!ok(e,
          ORT(kCreateTensorWithDataAsOrtValue,
              OrtStatus * (*)(const OrtMemoryInfo*, void*, size_t, const int64_t*, size_t, int, OrtValue**))(
              cpuInfo, data, len * 4, dims.data(), dims.size(), kFloat, &v),
          "CreateTensorWithDataAsOrtValue"))
    return nullptr;
  return v;
}

// run(handle, inNames[], inData[], inShapes[][], outNames[], outData[] (Float32Array | null), outShapes[][])
// -> { data, shape }[]: data is the caller's buffer where given, else a copy of ORT's output. Synchronous.
static napi_value Run(napi_env e, napi_callback_info ci) {
  size_t argc = 7;
  napi_value argv[7];
  NAPI(napi_get_cb_info(e, ci, &argc, argv, nullptr, nullptr));
  Session* sess = sessionOf(e, argv[0], true);
  if (!sess) return nullptr;
  uint32_t nin, nout;
  NAPI(napi_get_array_length(e, argv[1], &nin));
  NAPI(napi_get_array_length(e, argv[4], &nout));
  std::vector<std::string> inNames(nin), outNames(nout);
  std::vector<OrtValue*> ins(nin, nullptr), outs(nout, nullptr);
  std::vector<napi_value> outArrays(nout, nullptr);
  auto relv = ORT(kReleaseValue, void (*)(OrtValue*));
  auto cleanup = [&]() {
    for (auto* v : ins) if (v) relv(v);
    for (auto* v : outs) if (v) relv(v);
  };
  for (uint32_t i = 0; i < nin; i++) {
    napi_value nm, d, sh;
    NAPI(napi_get_element(e, argv[1], i, &nm));
    NAPI(napi_get_element(e, argv[2], i, &d));
    NAPI(napi_get_element(e, argv[3], i, &sh));
    inNames[i] = str(e, nm);
    if (!(ins[i] = wrap(e, d, sh))) return cleanup(), nullptr;
  }
  for (uint32_t i = 0; i < nout; i++) {
    napi_value nm, d;
    NAPI(napi_get_element(e, argv[4], i, &nm));
    NAPI(napi_get_element(e, argv[5], i, &d));
    outNames[i] = str(e, nm);
    napi_valuetype t;
    NAPI(napi_typeof(e, d, &t));
    if (t != napi_null && t != napi_undefined) {
      napi_value sh;
      NAPI(napi_get_element(e, argv[6], i, &sh));
      if (!(outs[i] = wrap(e, d, sh))) return cleanup(), nullptr;
      outArrays[i] = d;
    }
  }
  std::vector<const char*> inC(nin), outC(nout);
  for (uint32_t i = 0; i < nin; i++) inC[i] = inNames[i].c_str();
  for (uint32_t i = 0; i < nout; i++) outC[i] = outNames[i].c_str();
  auto run = ORT(kRun, OrtStatus * (*)(OrtSession*, const void*, const char* const*, const OrtValue* const*, size_t,
                                       const char* const*, size_t, OrtValue**));
  if (!ok(e, run(sess->s, nullptr, inC.data(), ins.data(), nin, outC.data(), nout, outs.data()), "Run"))
    return cleanup(), nullptr;
  napi_value result;
  NAPI(napi_create_array_with_length(e, nout, &result));
  for (uint32_t i = 0; i < nout; i++) {
    const std::vector<int64_t> dims = dimsOf(outs[i]);
    const size_t rank = dims.size();
    napi_value obj, shape;
    NAPI(napi_create_object(e, &obj));
    NAPI(napi_create_array_with_length(e, rank, &shape));
    size_t count = 1;
    for (size_t r = 0; r < rank; r++) {
      napi_value d;
      NAPI(napi_create_int64(e, dims[r], &d));
      NAPI(napi_set_element(e, shape, uint32_t(r), d));
      count *= size_t(dims[r]);
    }
    if (!outArrays[i]) {
      void* src;
      ORT(kGetTensorMutableData, OrtStatus * (*)(const OrtValue*, void**))(outs[i], &src);
      void* dst;
      napi_value ab, ta;
      NAPI(napi_create_arraybuffer(e, count * 4, &dst, &ab));
      std::memcpy(dst, src, count * 4);
      NAPI(napi_create_typedarray(e, napi_float32_array, count, ab, 0, &ta));
      outArrays[i] = ta;
    }
    NAPI(napi_set_named_property(e, obj, "data", outArrays[i]));
    NAPI(napi_set_named_property(e, obj, "shape", shape));
    NAPI(napi_set_element(e, result, i, obj));
  }
  cleanup();
  return result;
}

static napi_value Release(napi_env e, napi_callback_info ci) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI(napi_get_cb_info(e, ci, &argc, argv, nullptr, nullptr));
  Session* sess = sessionOf(e, argv[0], false);
  if (!sess) return nullptr;
  if (sess->s) ORT(kReleaseSession, void (*)(OrtSession*))(sess->s);
  sess->s = nullptr;
  return nullptr;
}

// endProfiling(handle) -> the path of the profile ONNX Runtime wrote (the session had a profile prefix).
static napi_value EndProfiling(napi_env e, napi_callback_info ci) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI(napi_get_cb_info(e, ci, &argc, argv, nullptr, nullptr));
  Session* sess = sessionOf(e, argv[0], true);
  if (!sess) return nullptr;
  OrtAllocator* alloc;
  ORT(kGetAllocatorWithDefaultOptions, OrtStatus * (*)(OrtAllocator**))(&alloc);
  char* path;
  if (!ok(e, ORT(kSessionEndProfiling, OrtStatus * (*)(OrtSession*, OrtAllocator*, char**))(sess->s, alloc, &path), "SessionEndProfiling"))
    return nullptr;
  napi_value v;
  napi_create_string_utf8(e, path, NAPI_AUTO_LENGTH, &v);
  ORT(kAllocatorFree, OrtStatus * (*)(OrtAllocator*, void*))(alloc, path);
  return v;
}

// ---- the optimiser passes (native/optim.cc) ----
// The float32 data of element i of a JS array of Float32Arrays, and its length; false (with a TypeError
// thrown) when it is not one.
static bool f32At(napi_env e, napi_value arr, uint32_t i, float** data, size_t* n) {
  napi_value ta, ab;
  napi_typedarray_type tt;
  size_t off;
  void* d;
  bool isTyped = false;
  if (napi_get_element(e, arr, i, &ta) != napi_ok || napi_is_typedarray(e, ta, &isTyped) != napi_ok || !isTyped ||
      napi_get_typedarray_info(e, ta, &tt, n, &d, &ab, &off) != napi_ok || tt != napi_float32_array) {
    napi_throw_type_error(e, nullptr, "ortnative optimiser: expected arrays of Float32Array");
    return false;
  }
  *data = static_cast<float*>(d);
  return true;
}

// Segments from up to four parallel arrays of Float32Arrays (null for an unused one), all of equal lengths.
static bool segmentsOf(napi_env e, napi_value* arrays, int count, std::vector<OptimSegment>& segs) {
  uint32_t len = 0;
  if (napi_get_array_length(e, arrays[0], &len) != napi_ok) {
    napi_throw_type_error(e, nullptr, "ortnative optimiser: expected arrays of Float32Array");
    return false;
  }
  for (int a = 1; a < count; a++) {
    uint32_t other = 0;
    if (napi_get_array_length(e, arrays[a], &other) != napi_ok || other != len) {
      napi_throw_type_error(e, nullptr, "ortnative optimiser: the tensor lists differ in length");
      return false;
    }
  }
  segs.assign(len, OptimSegment{nullptr, nullptr, nullptr, nullptr, 0});
  for (uint32_t i = 0; i < len; i++) {
    float* d[4] = {nullptr, nullptr, nullptr, nullptr};
    size_t n[4] = {0, 0, 0, 0};
    for (int a = 0; a < count; a++)
      if (!f32At(e, arrays[a], i, &d[a], &n[a])) return false;
    for (int a = 1; a < count; a++)
      if (n[a] != n[0]) {
        napi_throw_range_error(e, nullptr, "ortnative optimiser: tensors of one parameter differ in length");
        return false;
      }
    segs[i] = OptimSegment{d[0], count > 1 ? d[1] : d[0], count > 2 ? d[2] : nullptr, count > 3 ? d[3] : nullptr, n[0]};
  }
  return true;
}

// The call's N arguments into argv, the first `lists` of them parallel tensor lists read as segments.
template <size_t N>
static bool optimArgs(napi_env e, napi_callback_info ci, napi_value (&argv)[N], int lists,
                      std::vector<OptimSegment>& segs) {
  size_t argc = N;
  if (napi_get_cb_info(e, ci, &argc, argv, nullptr, nullptr) != napi_ok || argc < N) {
    napi_throw_type_error(e, nullptr, "ortnative optimiser: missing arguments");
    return false;
  }
  return segmentsOf(e, argv, lists, segs);
}

// optimAdam(ps[], gs[], ms[], vs[], [beta1, beta2, eps, alpha, clip]): Adam in place, as optim.ts adamLoop.
static napi_value OptimAdam(napi_env e, napi_callback_info ci) {
  napi_value argv[5];
  std::vector<OptimSegment> segs;
  if (!optimArgs(e, ci, argv, 4, segs)) return nullptr;
  double k[5];
  for (uint32_t i = 0; i < 5; i++) {
    napi_value x;
    NAPI(napi_get_element(e, argv[4], i, &x));
    NAPI(napi_get_value_double(e, x, &k[i]));
  }
  optimAdam(segs, AdamCoefs{k[0], 1 - k[0], k[1], 1 - k[1], k[3], k[2], k[4]});
  return nullptr;
}

// optimEma(es[], ps[], decay): e <- decay e + (1 - decay) p in place, as optim.ts emaLoop.
static napi_value OptimEma(napi_env e, napi_callback_info ci) {
  napi_value argv[3];
  std::vector<OptimSegment> segs;
  if (!optimArgs(e, ci, argv, 2, segs)) return nullptr;
  double decay;
  NAPI(napi_get_value_double(e, argv[2], &decay));
  optimEma(segs, decay);
  return nullptr;
}

// optimSumSquares(gs[]) -> number[]: each tensor's sum of squares in float64 (optim.ts sumOfSquares).
static napi_value OptimSumSquares(napi_env e, napi_callback_info ci) {
  napi_value argv[1];
  std::vector<OptimSegment> segs;
  if (!optimArgs(e, ci, argv, 1, segs)) return nullptr;
  std::vector<double> sums;
  optimSumSquares(segs, sums);
  napi_value arr;
  NAPI(napi_create_array_with_length(e, sums.size(), &arr));
  for (size_t i = 0; i < sums.size(); i++) {
    napi_value x;
    NAPI(napi_create_double(e, sums[i], &x));
    NAPI(napi_set_element(e, arr, uint32_t(i), x));
  }
  return arr;
}

static napi_value ModuleInit(napi_env e, napi_value exports) {
  napi_property_descriptor props[] = {
      {"init", nullptr, Init, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"kernels", nullptr, Kernels, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"createSession", nullptr, CreateSession, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"run", nullptr, Run, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"endProfiling", nullptr, EndProfiling, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"release", nullptr, Release, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"optimAdam", nullptr, OptimAdam, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"optimEma", nullptr, OptimEma, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"optimSumSquares", nullptr, OptimSumSquares, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(e, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, ModuleInit)
