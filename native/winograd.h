// A 3x3, stride-1, pad-1 convolution as Winograd F(2x2, 3x3) on ONNX Runtime's NCHW16c blocked layout
// (native/winograd.cc): the 3x3 convolutions of sampling and training graphs (graph pass winograd-convs).
#pragma once
#include <cstdint>

struct WinoJob {
  int64_t n, c, k, h, w;  // batch, input and output channels (multiples of 16), height and width (even)
  int64_t tilesPerUnit;   // 2x2 output tiles per unit of work (the tiles of one image in chunks)
  const float* x;         // [N, C/16, H, W, 16]
  const float* u;         // [16, C, K]: each filter g as G g G^T, made when the graph is built
  const float* bias;      // [K]
  const float* sum;       // [N, K/16, H, W, 16] added to the output (a residual), or null
  float* y;               // [N, K/16, H, W, 16]
};

bool winoShapesOk(int64_t c, int64_t k, int64_t h, int64_t w);
// The job's units (image, chunk of tiles), each independent; tilesPerUnit set for the cache.
int64_t winoUnits(WinoJob& j);
void winoUnit(const WinoJob& j, int64_t u);
// The filters w [K, C, 3, 3] as ConvWinograd takes them: u [16, C, K] = G g G^T of each filter g; with flip,
// those of the convolution with w's filters flipped in space and transposed (the input gradient of a conv by
// w), u [16, K, C]. Units: blocks of 16 output channels, or (flip) rows of w.
int64_t winoFilterUnits(int64_t k, int64_t c, bool flip);
void winoFilterUnit(const float* w, int64_t k, int64_t c, bool flip, int64_t unit, float* u);

// The weight gradient of such a convolution (ConvWinogradWeightGrad), as Winograd F(3x3, 2x2): each 4x4 input
// tile d and the output gradient's 2x2 tile e at the same place give G^T [(A e A^T) . (B^T d B)] G, a 3x3
// contribution to every filter; summed over the tiles in the transformed domain, 16 products per channel pair
// and tile against the direct form's 36.
struct WinoGradJob {
  int64_t n, c, k, h, w;   // as WinoJob
  int64_t ranges;          // ranges of the batch's tiles, each summed into its own S (added at the end)
  int64_t tilesPerChunk;   // tiles transformed at a time within a range
  const float* x;          // [N, C/16, H, W, 16]
  const float* dy;         // [N, K/16, H, W, 16]
  float* s;                // [ranges, 16, K, C]: the sums of the transformed products
  float* dw;               // [K, C, 3, 3]
};
// Sets ranges and tilesPerChunk; the scratch s needs ranges * 16 K C floats.
void winoGradPlan(WinoGradJob& j, int64_t threads);
void winoGradRange(const WinoGradJob& j, int64_t r);  // range r's sums, from zero
void winoGradOutput(const WinoGradJob& j, int64_t k);  // dw[k] from every range's sums
