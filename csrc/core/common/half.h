// IEEE 754 binary32 -> binary16 conversion, round to nearest even, portable (no F16C required).
// Overflow goes to +-inf, NaN stays NaN, subnormals are produced exactly.
#pragma once

#include <cstdint>
#include <cstring>

namespace pyimgcls::core {

inline std::uint16_t float_to_half(float value) {
    std::uint32_t f;
    std::memcpy(&f, &value, sizeof f);
    const std::uint32_t sign = (f >> 16) & 0x8000u;
    f &= 0x7fffffffu;
    if (f >= 0x7f800000u) {  // inf or NaN
        return static_cast<std::uint16_t>(sign | 0x7c00u | (f > 0x7f800000u ? 0x200u : 0u));
    }
    if (f >= 0x477ff000u) {  // rounds to >= 65520: overflow to inf
        return static_cast<std::uint16_t>(sign | 0x7c00u);
    }
    if (f < 0x38800000u) {  // below the smallest normal half: subnormal or zero
        if (f < 0x33000000u) return static_cast<std::uint16_t>(sign);  // < 2^-25 rounds to 0
        const std::uint32_t exp = f >> 23;
        const std::uint32_t mant = (f & 0x7fffffu) | 0x800000u;
        const std::uint32_t shift = 126u - exp;  // in [14, 24]
        // value = mant * 2^(exp-150); half subnormal unit = 2^-24 -> h = mant >> (126 - exp)
        std::uint32_t h = mant >> shift;
        const std::uint32_t rem = mant & ((1u << shift) - 1u);
        const std::uint32_t halfway = 1u << (shift - 1u);
        if (rem > halfway || (rem == halfway && (h & 1u))) ++h;
        return static_cast<std::uint16_t>(sign | h);
    }
    std::uint32_t h = ((f - 0x38000000u) >> 13);  // rebias exponent 127 -> 15
    const std::uint32_t rem = f & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
    return static_cast<std::uint16_t>(sign | h);
}

}  // namespace pyimgcls::core
