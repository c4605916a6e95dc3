// The SSE2 kernel set (see kernels.h): the x86-64 baseline, compiled with the core's own flags.
// Pixels are widened to float by unpacking against zero (u8 -> u16 -> u32 -> float). Empty (null
// set) off x86, on 32-bit x86 without SSE2, and under PYIMGCLS_NO_SIMD.
#include "core/preprocess/kernels.h"

#if (defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)) && !defined(PYIMGCLS_NO_SIMD)

#include <cstring>

#include "core/preprocess/kernel_bodies_sse.h"

namespace pyimgcls::core {
namespace {

struct LoadSse2 {
    static __m128 pixel4(const std::uint8_t* p) {
        std::int32_t v;
        std::memcpy(&v, p, 4);
        const __m128i z = _mm_setzero_si128();
        const __m128i x = _mm_unpacklo_epi8(_mm_cvtsi32_si128(v), z);
        return _mm_cvtepi32_ps(_mm_unpacklo_epi16(x, z));
    }
    static __m128 pixel4(const std::uint16_t* p) {
        const __m128i x = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
        return _mm_cvtepi32_ps(_mm_unpacklo_epi16(x, _mm_setzero_si128()));
    }
};

constexpr PreprocessKernels kSse2 = {
    "sse2",
    &hpass_color_taps<LoadSse2, std::uint8_t>,
    &hpass_color_taps<LoadSse2, std::uint16_t>,
    &fused_2x2_sse<LoadSse2, std::uint8_t>,
    &fused_2x2_sse<LoadSse2, std::uint16_t>,
    nullptr,
    nullptr,
    nullptr,
    &rgbx_to_planes_f32_sse,
    &cv2_hrow_sse,
    &cv2_vrow_sse,
    nullptr,
    nullptr,
};

}  // namespace

const PreprocessKernels* sse2_kernels() { return &kSse2; }

}  // namespace pyimgcls::core

#else

namespace pyimgcls::core {
const PreprocessKernels* sse2_kernels() { return nullptr; }
}  // namespace pyimgcls::core

#endif
