// The inner loops of core/linear/softmax.cpp over one block of rows, in a portable and an AVX2 + FMA
// version (softmax_avx2.cpp, compiled for AVX2 only where the build can; see CMakeLists.txt).
//   block_dots:  z (rows, K) = X_b (rows, d) W^T              (W: (K, d))
//   block_outer: acc (K, d) += R^T X_b, R (rows, K)           (acc: float, row stride d)
#pragma once

#include <cstdint>

// The build compiles *_avx2.cpp for AVX2 (PYIMGCLS_AVX2_KERNELS); in a universal2 build only the
// x86_64 slice has it.
#if defined(PYIMGCLS_AVX2_KERNELS) && (defined(__x86_64__) || defined(__i386__))
#define PYIMGCLS_LINEAR_AVX2 1
#endif

namespace pyimgcls::core::linear_detail {

using DotsFn = void (*)(const float* x, std::int64_t rows, std::int64_t d, const float* w, std::int64_t k, float* z);
using OuterFn = void (*)(const float* x, std::int64_t rows, std::int64_t d, const float* r, std::int64_t k,
                         float* acc);

void block_dots_scalar(const float* x, std::int64_t rows, std::int64_t d, const float* w, std::int64_t k, float* z);
void block_outer_scalar(const float* x, std::int64_t rows, std::int64_t d, const float* r, std::int64_t k,
                        float* acc);

#if defined(PYIMGCLS_LINEAR_AVX2)
void block_dots_avx2(const float* x, std::int64_t rows, std::int64_t d, const float* w, std::int64_t k, float* z);
void block_outer_avx2(const float* x, std::int64_t rows, std::int64_t d, const float* r, std::int64_t k,
                      float* acc);
#endif

}  // namespace pyimgcls::core::linear_detail
