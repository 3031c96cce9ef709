// A 3x3, stride-1, pad-1 convolution as Winograd F(m x m, 3x3), m = 2 or 4, on ONNX Runtime's NCHWc blocked
// layout, blocks of 16 (AVX-512) or 8 (AVX2) channels (native/winograd.cc): the 3x3 convolutions of sampling and training graphs and their weight gradients
// (graph pass winograd-convs).
#pragma once
#include <cstdint>

// The transformed tile of F(m x m, 3x3) has (m + 2)^2 positions: 16 for m = 2, 36 for m = 4.
inline int64_t winoPositions(int64_t m) { return (m + 2) * (m + 2); }

struct WinoJob {
  int64_t m;              // output tile size, 2 or 4
  int64_t block;          // the layout's channel block B, 16 or 8
  int64_t n, c, k, h, w;  // batch, input and output channels (multiples of B), height and width (multiples of m)
  int64_t tilesPerUnit;   // m x m output tiles per unit of work (the tiles of one image in chunks)
  const float* x;         // [N, C/B, H, W, B]
  const float* u;         // [P, C, K]: each filter g as G g G^T, P = winoPositions(m); or null, then ub
  const uint32_t* ub;     // with u null: [P, C/2, K] in bfloat16, pairs of input channels in one word (channel
                          // 2q in the low half, 2q + 1 in the high), products by AVX-512 BF16 (winoBf16)
  const float* bias;      // [K]
  const float* sum;       // [N, K/B, H, W, B] added to the output (a residual), or null
  float* y;               // [N, K/B, H, W, B]
};

bool winoShapesOk(int64_t m, int64_t block, int64_t c, int64_t k, int64_t h, int64_t w);
// The job's units (image, chunk of tiles), each independent; tilesPerUnit set for the cache.
int64_t winoUnits(WinoJob& j);
// Whether this build has the bfloat16 form (ub; AVX-512 BF16, 16-channel blocks only).
bool winoBf16();
void winoUnit(const WinoJob& j, int64_t u);
// The filters w [K, C, 3, 3] as ConvWinograd takes them: u [P, C, K] = G g G^T of each filter g; with flip,
// those of the convolution with w's filters flipped in space and transposed (the input gradient of a conv by
// w), u [P, K, C]. Units: blocks of 16 output channels, or (flip) rows of w.
int64_t winoFilterUnits(int64_t k, int64_t c, bool flip);
void winoFilterUnit(int64_t m, const float* w, int64_t k, int64_t c, bool flip, int64_t unit, float* u);

// The weight gradient of such a convolution (ConvWinogradWeightGrad), as Winograd F(3x3, m x m): each input
// tile d ((m + 2) x (m + 2)) and the output gradient's m x m tile e at the same place give
// G^T [(A e A^T) . (B^T d B)] G, a 3x3 contribution to every filter; summed over the tiles in the transformed
// domain, (m + 2)^2 products per channel pair and tile against the direct form's 9 m^2.
struct WinoGradJob {
  int64_t m;               // tile size, 2 or 4
  int64_t block;           // the layout's channel block B, 16 or 8
  int64_t n, c, k, h, w;   // as WinoJob
  int64_t ranges;          // ranges of the batch's tiles, each summed into its own S (added at the end)
  int64_t tilesPerChunk;   // tiles transformed at a time within a range
  const float* x;          // [N, C/B, H, W, B]
  const float* dy;         // [N, K/B, H, W, B]
  float* s;                // [ranges, P, K, C]: the sums of the transformed products
  float* dw;               // [K, C, 3, 3]
};
// Sets ranges and tilesPerChunk; the scratch s needs ranges * P K C floats.
void winoGradPlan(WinoGradJob& j, int64_t threads);
void winoGradRange(const WinoGradJob& j, int64_t r);  // range r's sums, from zero
void winoGradOutput(const WinoGradJob& j, int64_t k);  // dw[k] from every range's sums
