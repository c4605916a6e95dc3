// Views: pointer + shape + strides of the pixel buffers the kernels read and write. A view owns
// nothing; the caller keeps the memory alive for the duration of the call.
//
// ImageView: one interleaved image, element (y, x, c) at data[y * row_stride + x * channels + c]
// (row_stride in elements, so rows may be padded or the image a crop of a larger one).
// TensorView: a C-contiguous batch, logical (N, C, H, W); `layout` says how it is stored
// (NCHW planes or NHWC interleaved) and `dtype` what each element is.
#pragma once

#include <cstddef>

namespace pyimgcls::core {

enum class PixelType : int { u8 = 0, u16 = 1 };
enum class Layout : int { nchw = 0, nhwc = 1 };
enum class OutType : int { f32 = 0, f16 = 1, u8 = 2 };

struct ImageView {
    const void* data = nullptr;
    int height = 0, width = 0, channels = 0;  // channels in {1, 3, 4}
    std::ptrdiff_t row_stride = 0;            // in elements
    PixelType type = PixelType::u8;
};

struct TensorView {
    void* data = nullptr;
    int batch = 0, channels = 0, height = 0, width = 0;  // logical N, C, H, W
    Layout layout = Layout::nchw;
    OutType dtype = OutType::f32;
};

}  // namespace pyimgcls::core
