// Radix sorting of scores for the ranking kernels (NMS candidate order, metric curves).
//
// desc_key maps a finite float / double to an unsigned key whose ascending order is the
// descending order of the value (-0.0 and +0.0 map to the same key, as they compare equal).
// radix_sort_by_key is a stable LSD radix sort of (key, payload) pairs with 11-bit digits (2048
// buckets: the histogram stays in L1); digits that are the same for every key are skipped.
// radix_sort_bare sorts bare keys with a chosen digit width (measured on 1k-170k float keys:
// 8-bit digits win below about 4k keys, 12-bit digits above; keys relative to their minimum often
// leave the top digit constant, so 12-bit digits then take two passes).
// Complexity: O(passes * n) with passes = ceil(bits / digit bits).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace pyimgcls::core {

inline std::uint32_t desc_key(float v) {
    if (v == 0.0f) v = 0.0f;
    std::uint32_t u;
    std::memcpy(&u, &v, sizeof u);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);  // ascending order of the float
    return ~u;
}

inline std::uint64_t desc_key(double v) {
    if (v == 0.0) v = 0.0;
    std::uint64_t u;
    std::memcpy(&u, &v, sizeof u);
    u = (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
    return ~u;
}

// Inverse of desc_key.
inline float key_value(std::uint32_t k) {
    std::uint32_t u = ~k;
    u = (u & 0x80000000u) ? (u & 0x7fffffffu) : ~u;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

inline double key_value(std::uint64_t k) {
    std::uint64_t u = ~k;
    u = (u & 0x8000000000000000ull) ? (u & 0x7fffffffffffffffull) : ~u;
    double f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

// Sorts keys ascending, moving payload along; stable. k2 / p2 are scratch (reused by callers
// that sort many arrays: fresh large allocations cost page faults).
template <typename Key, typename Payload>
void radix_sort_by_key(std::vector<Key>& keys, std::vector<Payload>& payload, std::vector<Key>& k2,
                       std::vector<Payload>& p2) {
    constexpr int kBits = 11, kBuckets = 1 << kBits;
    const std::size_t m = keys.size();
    k2.resize(m);
    p2.resize(m);
    std::uint32_t count[kBuckets];
    for (int shift = 0; shift < static_cast<int>(sizeof(Key)) * 8; shift += kBits) {
        std::fill(count, count + kBuckets, 0u);
        for (std::size_t i = 0; i < m; ++i) ++count[(keys[i] >> shift) & (kBuckets - 1)];
        if (m == 0 || count[(keys[0] >> shift) & (kBuckets - 1)] == m) continue;
        std::uint32_t sum = 0;
        for (auto& c : count) {
            const std::uint32_t t = c;
            c = sum;
            sum += t;
        }
        for (std::size_t i = 0; i < m; ++i) {
            const std::uint32_t d = count[(keys[i] >> shift) & (kBuckets - 1)]++;
            k2[d] = keys[i];
            p2[d] = payload[i];
        }
        keys.swap(k2);
        payload.swap(p2);
    }
}

// Sorts m unsigned keys ascending (LSD, Bits-bit digits, constant digits skipped). tmp holds m
// keys; returns whichever of a / tmp holds the result.
template <int Bits, typename Key>
Key* radix_sort_bare(Key* a, Key* tmp, std::size_t m) {
    constexpr int kKeyBits = static_cast<int>(sizeof(Key)) * 8;
    constexpr int kBuckets = 1 << Bits, kPasses = (kKeyBits + Bits - 1) / Bits;
    std::uint32_t hist[kPasses][kBuckets] = {};
    for (std::size_t i = 0; i < m; ++i) {
        const Key v = a[i];
        for (int p = 0; p < kPasses; ++p) ++hist[p][(v >> (p * Bits)) & (kBuckets - 1)];
    }
    for (int pass = 0; pass < kPasses; ++pass) {
        std::uint32_t* h = hist[pass];
        const int shift = Bits * pass;
        if (m == 0 || h[(a[0] >> shift) & (kBuckets - 1)] == m) continue;  // constant digit
        std::uint32_t sum = 0;
        for (int b = 0; b < kBuckets; ++b) {
            const std::uint32_t t = h[b];
            h[b] = sum;
            sum += t;
        }
        for (std::size_t i = 0; i < m; ++i) tmp[h[(a[i] >> shift) & (kBuckets - 1)]++] = a[i];
        std::swap(a, tmp);
    }
    return a;
}

}  // namespace pyimgcls::core
