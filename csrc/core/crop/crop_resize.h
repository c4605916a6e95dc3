// crop_resize: a batch of box crops of one image, each resampled to out_h x out_w, normalised and
// written in one layout (the R-Net / O-Net inputs of MTCNN, the second stage of detect-then-classify).
//
// Indices: box k = (x1, y1, x2, y2) in pixel-edge coordinates (pixel (y, x) covers [x, x + 1) x
// [y, y + 1)); output pixel (k, i, j) samples the box region. The virtual source of a box is the
// image extended by `fill` outside it (MTCNN pads the part of a box that lies outside the image with
// zeros before resizing), restricted to the box: taps past the box edge are clamped onto the box's
// edge pixels, as cv2.resize on the slice image[y1:y2, x1:x2] replicates its border.
// Conventions:
//   bilinear: half-pixel centres, x = x1 + (j + 0.5) * (x2 - x1) / out_w - 0.5, two taps clamped to
//             [floor(x1), ceil(x2) - 1]; equals cv2 INTER_LINEAR on the slice for integer boxes.
//   area    : cv2 INTER_AREA on the slice (integer boxes only): box coverage when both axes shrink,
//             cv2's area-mode bilinear otherwise.
//   bilinear_cv2: cv2 INTER_LINEAR on the slice bit for bit (its integer arithmetic, the preprocessing
//             engine's bilinear_cv2 rows): integer boxes inside the image only, 1 or 3 channels with
//             contiguous pixels and rows, NCHW or NHWC (crop_resize throws std::invalid_argument else).
//   out = value * scale[c] + bias[c], value in source units (fill too); float32 arithmetic for the
//   samples, double for positions; no rounding.
// Cost: O(out_h * out_w * C * taps) per box plus O(min(box, image) + out) for the tap tables; no
// allocation depends on the box size (parts outside the image fold into one fill tap).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/common/views.h"

namespace pyimgcls::core {

// A uint8 image of any strides (in bytes, negative or zero allowed): element (y, x, c) at
// data[y * sy + x * sx + c * sc].
struct StridedImage {
    const std::uint8_t* data = nullptr;
    int height = 0, width = 0, channels = 0;
    std::ptrdiff_t sy = 0, sx = 0, sc = 0;
};

enum class CropInterpolation : int { bilinear = 0, area = 1, bilinear_cv2 = 2 };
enum class CropLayout : int { nchw = 0, nhwc = 1, nwhc = 2 };  // nwhc: Keras-transposed (MTCNN)
// Row kernels of the bilinear path: best (AVX2 where this build and CPU run it, else baseline),
// baseline (SSE2 / portable loops) or avx2 (only where crop_avx2_usable(); the tests compare the two).
// Both give bit-identical outputs.
enum class CropKernels : int { best = 0, baseline = 1, avx2 = 2 };

struct CropParams {
    CropInterpolation mode = CropInterpolation::bilinear;
    CropLayout layout = CropLayout::nchw;
    int out_h = 0, out_w = 0;
    const float* fill = nullptr;   // channels values, source units
    const float* scale = nullptr;  // channels values
    const float* bias = nullptr;   // channels values
    bool out_u8 = false;           // uint8 output: rounded half away from zero, saturated (else float32)
    CropKernels kernels = CropKernels::best;
};

// Whether this build has the AVX2 row kernels (crop_resize_avx2.cpp) and this CPU runs them.
bool crop_avx2_usable();

// Checks a box for the mode: finite, x2 > x1, y2 > y1, integer corners for area and bilinear_cv2, and
// for bilinear_cv2 inside the image (width x height). Returns an empty string when it is valid, else
// what is wrong (for the caller's message).
const char* crop_box_problem(const double* box, CropInterpolation mode, int width, int height);

// Why an image cannot take bilinear_cv2 (channels other than 1 and 3, pixels or rows not contiguous,
// NWHC); an empty string when it can.
const char* crop_cv2_problem(const StridedImage& src, CropLayout layout);

// Writes out[k] for k in [0, count) from boxes[4k .. 4k + 3] (checked with crop_box_problem).
// `out` is C-contiguous float32 (uint8 with p.out_u8) of count * channels * out_h * out_w values in p.layout.
// p.kernels == avx2 where !crop_avx2_usable(): std::invalid_argument before any work.
void crop_resize(const StridedImage& src, const double* boxes, std::ptrdiff_t count, void* out,
                 const CropParams& p, int threads);

}  // namespace pyimgcls::core
