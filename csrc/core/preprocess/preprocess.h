// Fused image preprocessing: resize (any Interpolation) + crop or letterbox pad + channel
// selection / reorder / gray conversion + normalisation + layout (NCHW / NHWC) + dtype, written
// in one pass per output row straight into the batch tensor (no intermediate resized image).
//
// bilinear_cv2 on uint8 sources is integer arithmetic instead, bit-exact with cv2.resize(INTER_LINEAR)
// (resample.h: Cv2LinearAxis): each output element is the uint8 cv2 computes, then normalised as
// above (uint16 sources take the float bilinear path with cv2's scales).
//
// Indices: output row y / column x of image `index` in the batch; the content window of the
// plan covers rows [out_y, out_y + content_h) and columns [out_x, out_x + content_w); the rest of
// the output image is padding. Source pixels are interleaved (pixel stride == channels), rows
// may be strided. Arithmetic is float32 with float32 weights; uint8 output rounds half away from
// zero and saturates (where bicubic's negative lobes overshoot, too); float outputs keep the value
// as computed, overshoot included (as cv2's float path does), except with bicubic_aa, which clamps
// each pass to the source range (before normalisation), as Pillow clips its uint8 images.
// Cost: O(H * W * (taps_x + taps_y)) per image plus O(taps) per source row.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/common/views.h"
#include "core/preprocess/resample.h"

namespace pyimgcls::core {

// Geometry of one image: the source is resized to resized_h x resized_w (virtually), the window
// starting at (crop_y, crop_x) of size content_h x content_w is written at (out_y, out_x).
struct ResizePlan {
    int resized_h = 0, resized_w = 0;
    int crop_y = 0, crop_x = 0;
    int out_y = 0, out_x = 0;
    int content_h = 0, content_w = 0;
};

struct PreprocessParams {
    Interpolation interpolation = Interpolation::bilinear;
    int out_channels = 3;                 // 1 or 3
    int channel_map[3] = {0, 1, 2};       // output channel k reads source channel channel_map[k]
    float gray_weights[3] = {0.299f, 0.587f, 0.114f};  // per source channel, for 3 -> 1
    float scale[3] = {1.f, 1.f, 1.f};     // out = value * scale[k] + bias[k]; value in source units
    float bias[3] = {0.f, 0.f, 0.f};
    float pad[3] = {0.f, 0.f, 0.f};       // padding, already in output units
};

struct PreprocessKernels;  // kernels.h

// Per-image resampling tables, built once and shared by the threads that split its rows.
// bilinear_cv2 on a uint8 source fills cv2_x / cv2_y (integer path, `cv2_exact`) instead of x / y;
// `cv2_halve`: an exact 2x shrink of both axes, which cv2 computes as 2x2 block means.
struct ImageTables {
    AxisTable x, y;
    bool cv2_exact = false, cv2_halve = false;
    Cv2LinearAxis cv2_x, cv2_y;
};

ImageTables make_tables(const ImageView& src, const ResizePlan& plan, Interpolation mode);

// Writes output rows [row_begin, row_end) of image `index` of `dst`.
void resize_normalize_rows(const ImageView& src, const TensorView& dst, int index,
                           const ResizePlan& plan, const ImageTables& tables,
                           const PreprocessParams& p, int row_begin, int row_end);

// Whole batch: threaded over images, or over rows when the batch holds one image. `kernels` is the
// colour row kernel set (kernels.h: kernel_set picks one by name); null: select_kernels().
void preprocess_batch(const std::vector<ImageView>& images, const std::vector<ResizePlan>& plans,
                      const TensorView& dst, const PreprocessParams& p, int threads,
                      const PreprocessKernels* kernels = nullptr);

}  // namespace pyimgcls::core
