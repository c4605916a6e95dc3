// Separable resampling tables: for one axis, which source samples feed each output sample and
// with which weights.
//
// Indices: output sample `o` in [0, count) is sample `o + offset` of a virtual image of length
// `resized` that the source of length `src` is resized to (offset > 0 is a crop). Each output
// reads the window [start[o], start[o] + taps) of the source with weights w[o * taps + j]; source
// indices outside [0, src) are clamped (edge replicate), their weights merged into the edge sample.
// Conventions (pixel centres at +0.5):
//   nearest     : floor((d + 0.5) * scale), accumulated as Pillow does       (PIL NEAREST)
//   bilinear    : cv2 INTER_LINEAR, x = (d + 0.5) * scale - 0.5, no antialias
//   bilinear_aa : PIL BILINEAR, triangle filter widened by max(scale, 1), normalised weights
//   bicubic     : cv2 INTER_CUBIC, x as for bilinear (cv2's scale pair, see area), Keys cubic
//                 a = -0.75 on the 4 samples floor(x) - 1 .. floor(x) + 2 whatever the scale (no
//                 antialias), edge replicate; weights can be negative or above 1 (overshoot)
//   bicubic_aa  : PIL BICUBIC, Keys cubic a = -0.5 of support 2, widened by max(scale, 1), the
//                 window cut at the image edges (no replicate) and the weights normalised
//   area        : cv2 INTER_AREA: box coverage when shrinking; cv2's area-mode bilinear when
//                 either axis grows (the caller passes `area_shrinks` for the image as a whole);
//                 scales as cv2 computes them: inv = dst / src, scale = 1 / inv (double)
// Cost: O(count * taps) to build.
#pragma once

#include <cstdint>
#include <vector>

namespace pyimgcls::core {

enum class Interpolation : int { nearest = 0, bilinear = 1, bilinear_aa = 2, area = 3, bicubic = 4, bicubic_aa = 5 };
constexpr int kInterpolationModes = 6;  // valid values: 0 .. kInterpolationModes - 1

struct AxisTable {
    int count = 0;
    int taps = 0;
    std::vector<int> start;   // count
    std::vector<float> w;     // count * taps
};

// Builds the table; `area_shrinks` selects cv2's box-coverage INTER_AREA (both axes shrink)
// versus its area-mode bilinear (any axis grows). Throws std::invalid_argument on bad sizes.
AxisTable make_axis_table(Interpolation mode, int src, int resized, int offset, int count,
                          bool area_shrinks);

}  // namespace pyimgcls::core
