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
//   bilinear_cv2: cv2 INTER_LINEAR on uint8 images, bit-exact: integer weights and arithmetic
//                 (Cv2LinearAxis below, used by the driver's own path); AxisTable gets the float
//                 bilinear taps (at cv2's scale pair), used for uint16 sources
// Cost: O(count * taps) to build.
#pragma once

#include <cstdint>
#include <vector>

namespace pyimgcls::core {

enum class Interpolation : int {
    nearest = 0, bilinear = 1, bilinear_aa = 2, area = 3, bicubic = 4, bicubic_aa = 5, bilinear_cv2 = 6
};
constexpr int kInterpolationModes = 7;  // valid values: 0 .. kInterpolationModes - 1

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

// bilinear_cv2, one axis, as OpenCV's cv::resize(INTER_LINEAR) computes it for uint8 images
// (checked against cv2 by tests/preprocessing/test_bilinear_cv2.py, not taken from its code):
// scale = 1 / (resized / src) (double); for output d, f = (float)((d + 0.5) * scale - 0.5),
// s = floor(f), f -= s (float); weights w0 = round_half_even((1 - f) * 2048), w1 =
// round_half_even(f * 2048), each on its own (their sum may be 2047 or 2049).
// Horizontal axis (`clamp_edges`): where s < 0 or s >= src - 1, s is clamped and f set to 0
// (weights 2048, 0). Vertical axis: the weights are kept and only the two row indices clamped.
// Sources i0 = clamp(s), i1 = clamp(s + 1). `halve`: the axis of an exact 2x shrink in both axes,
// where cv2 averages 2x2 blocks instead (i0 = 2d, i1 = 2d + 1, weights unused).
struct Cv2LinearAxis {
    int count = 0;
    std::vector<int> i0, i1;  // count
    std::vector<int> w0, w1;  // count, Q11 (2048 == 1)
};

Cv2LinearAxis make_cv2_linear_axis(int src, int resized, int offset, int count, bool clamp_edges, bool halve);

}  // namespace pyimgcls::core
