// The scalar kernel set (portable; the only one under PYIMGCLS_NO_SIMD or off x86) and the run-time
// choice of a set, automatic or by name (see kernels.h). Scalar colour rows: float32, taps in order,
// O(taps) per output.
#include "core/preprocess/kernels.h"

#include <stdexcept>

#include "core/common/cpu.h"
#include "core/preprocess/kernel_bodies_scalar.h"

namespace pyimgcls::core {
namespace {

template <typename Src, int TAPS>
void hpass_color_scalar(const Src* row, int ps, const AxisSpan& xt, const float* /*w4*/, int /*safe*/,
                        float* out) {
    hpass_color_tail<Src, TAPS>(row, ps, xt, 0, out);
}

template <typename Src>
void hpass_color_scalar_taps(const Src* row, int ps, const AxisSpan& xt, const float* w4, int safe, float* out) {
    switch (xt.taps) {
        case 1: hpass_color_scalar<Src, 1>(row, ps, xt, w4, safe, out); break;
        case 2: hpass_color_scalar<Src, 2>(row, ps, xt, w4, safe, out); break;
        default: hpass_color_scalar<Src, 0>(row, ps, xt, w4, safe, out); break;
    }
}

constexpr PreprocessKernels kScalar = {
    "scalar",
    &hpass_color_scalar_taps<std::uint8_t>,
    &hpass_color_scalar_taps<std::uint16_t>,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
};

const PreprocessKernels& choose() {
    if (cpu_has_sse41()) {  // check the CPU before touching the SSE4.1 file at all
        if (const PreprocessKernels* k = sse41_kernels()) return *k;
    }
    if (const PreprocessKernels* k = sse2_kernels()) return *k;
    return kScalar;
}

}  // namespace

const PreprocessKernels& scalar_kernels() { return kScalar; }

const PreprocessKernels& select_kernels() {
    static const PreprocessKernels& chosen = choose();
    return chosen;
}

std::vector<std::string> preprocess_kernel_sets() {
    std::vector<std::string> names{kScalar.name};
    if (const PreprocessKernels* k = sse2_kernels()) names.emplace_back(k->name);
    if (cpu_has_sse41()) {
        if (const PreprocessKernels* k = sse41_kernels()) names.emplace_back(k->name);
    }
    return names;
}

const PreprocessKernels& kernel_set(const std::string& name) {
    if (name == "auto") return select_kernels();
    const PreprocessKernels* k = nullptr;
    if (name == "scalar") k = &kScalar;
    else if (name == "sse2") k = sse2_kernels();
    else if (name == "sse41") k = cpu_has_sse41() ? sse41_kernels() : nullptr;  // the CPU check comes first
    else throw std::invalid_argument("kernels must be one of 'auto', 'scalar', 'sse2', 'sse41', got '" + name + "'");
    if (!k) {
        std::string offered;
        for (const std::string& n : preprocess_kernel_sets()) offered += (offered.empty() ? "" : ", ") + n;
        throw std::invalid_argument("kernels='" + name + "' is not available in this build on this CPU (available: " +
                                    offered + ")");
    }
    return *k;
}

}  // namespace pyimgcls::core
