// Per-label AP / AUC by counting the negatives (see ap_count.h for indices, keys and complexity).
// Columns go in blocks of 16: a row-wise gather writes each column's keys, positives from the front
// and negatives from the back of its slot; then each column is counted (or, if a histogram byte
// overflows, sorted). The AVX2 + POPCNT variants (8x8 transposing gather, histogram, prefix and
// precision sums, and the whole counting body compiled with them) are functions with
// __attribute__((target)) in this file, chosen at run time by has_avx2(); the portable code is the
// reference and the fallback.
#include "core/metrics/ap_count.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "core/common/parallel.h"
#include "core/common/radix.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(PYIMGCLS_NO_SIMD)
#include <immintrin.h>
#define PYIMGCLS_AVX2_DISPATCH 1
#else
#define PYIMGCLS_AVX2_DISPATCH 0
#endif

namespace pyimgcls::core {
namespace {

constexpr int kFineBits = 18;           // at most 2^18 fine buckets: the uint8 histogram stays in L2
constexpr std::int64_t kBlock = 16;     // columns gathered per row-wise pass
constexpr std::int64_t kTile = 128;     // rows per gather tile
constexpr std::size_t kSlack = 16;
constexpr std::int64_t kAhead = 64;         // rows the gather prefetches ahead      // per-column room for 8-lane stores at both ends

// Portable popcount (no libgcc call); the AVX2 paths use the instruction (__builtin_popcount under
// target("popcnt")).
inline int popcount32(std::uint32_t x) {
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0F0F0F0Fu;
    return static_cast<int>((x * 0x01010101u) >> 24);
}

#if defined(__GNUC__)
#define PYIMGCLS_POPCNT(x) __builtin_popcount(x)
#else
#define PYIMGCLS_POPCNT(x) popcount32(x)
#endif

template <typename T>
[[noreturn]] void throw_first_nonfinite(const T* scores, std::int64_t n, std::int64_t L) {
    for (std::int64_t i = 0; i < n * L; ++i)
        if (!std::isfinite(scores[i]))
            throw std::invalid_argument("scores must be finite, found " + std::to_string(double(scores[i])) +
                                        " at row " + std::to_string(i / L) + ", column " + std::to_string(i % L));
    throw std::logic_error("non-finite score reported but not found");
}

// ------------------------------------------------------------------------------------------- gather
// Column j of a block owns cap = n + kSlack keys at base + j * cap: positives ascend from the start,
// negatives descend from the end (so the block needs n keys per column, not 2n).
template <typename Key>
struct Block {
    Key* base;
    std::size_t cap;
    std::size_t np[kBlock + 8];
    std::size_t nn[kBlock + 8];
    Key* pos(std::int64_t j) const { return base + static_cast<std::size_t>(j) * cap; }
    Key* neg_end(std::int64_t j) const { return pos(j) + cap; }
};

template <typename T>
using KeyOf = decltype(desc_key(T{}));

// rows [i0, i1), columns [j0 + c0, j0 + c1) of the block; returns false on a non-finite score
template <typename T>
bool gather_scalar(const T* scores, const std::uint8_t* truth, std::int64_t L, std::int64_t j0, std::int64_t i0,
                   std::int64_t i1, std::int64_t c0, std::int64_t c1, Block<KeyOf<T>>& blk) {
    bool ok = true;
    for (std::int64_t c = c0; c < c1; ++c) {
        KeyOf<T>* pc = blk.pos(c);
        KeyOf<T>* ne = blk.neg_end(c) - 1;
        std::size_t a = blk.np[c], b = blk.nn[c];
        for (std::int64_t i = i0; i < i1; ++i) {
            const T s = scores[i * L + j0 + c];
            ok &= std::isfinite(s);
            const KeyOf<T> key = desc_key(s);
            const std::size_t t = truth[i * L + j0 + c] ? 1 : 0;
            pc[a] = key;  // written to both ends, kept by one (no unpredictable branch)
            *(ne - b) = key;
            a += t;
            b += 1 - t;
        }
        blk.np[c] = a;
        blk.nn[c] = b;
    }
    return ok;
}

#if PYIMGCLS_AVX2_DISPATCH
// lane permutations that pack the lanes of a mask to the bottom (left) or to the top (right)
struct PackTables {
    alignas(32) std::uint32_t left[256][8];
    alignas(32) std::uint32_t right[256][8];
    PackTables() {
        for (int m = 0; m < 256; ++m) {
            int k = 0;
            for (int b = 0; b < 8; ++b)
                if (m >> b & 1) left[m][k++] = static_cast<std::uint32_t>(b);
            const int cnt = k;
            for (; k < 8; ++k) left[m][k] = 0;
            for (int q = 0; q < 8; ++q) right[m][q] = 0;
            for (int q = 0; q < cnt; ++q) right[m][8 - cnt + q] = left[m][q];
        }
    }
};
const PackTables kPack;

__attribute__((target("avx2"))) inline void transpose8(__m256* r) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// rows [i0, i1) (a multiple of 8), columns [j0, j0 + w8) (w8 a multiple of 8): 8x8 tiles are
// transposed in registers, turned into keys, and each column's 8 keys are split by truth with
// two lane permutations (positives packed left at the front, negatives packed right at the back).
__attribute__((target("avx2,popcnt"))) bool gather_avx2(const float* scores, const std::uint8_t* truth, std::int64_t L,
                                                        std::int64_t j0, std::int64_t i0, std::int64_t i1,
                                                        std::int64_t w8, Block<std::uint32_t>& blk) {
    const __m256i expo = _mm256_set1_epi32(0x7F800000), low31 = _mm256_set1_epi32(0x7FFFFFFF);
    const __m256 zero = _mm256_setzero_ps();
    __m256i bad = _mm256_setzero_si256();
    // write cursors in locals: the vector stores may alias anything reachable through blk
    std::uint32_t* pp[kBlock];
    std::uint32_t* qq[kBlock];
    for (std::int64_t c = 0; c < w8; ++c) {
        pp[c] = blk.pos(c) + blk.np[c];
        qq[c] = blk.neg_end(c) - blk.nn[c];
    }
    for (std::int64_t i = i0; i < i1; i += 8) {
        for (std::int64_t jj = 0; jj < w8; jj += 8) {
            __m256 r[8];
            std::uint64_t y = 0;  // byte c: truth bits of column jj + c over the 8 rows
            for (int k = 0; k < 8; ++k) {
                const std::int64_t off = (i + k) * L + j0 + jj;
                if (jj == 0) {  // strided rows: the hardware prefetcher alone leaves the loads waiting
                    _mm_prefetch(reinterpret_cast<const char*>(scores + off + kAhead * L), _MM_HINT_T0);
                    _mm_prefetch(reinterpret_cast<const char*>(scores + off + kAhead * L + 16), _MM_HINT_T0);
                    _mm_prefetch(reinterpret_cast<const char*>(truth + off + kAhead * L), _MM_HINT_T0);
                }
                r[k] = _mm256_loadu_ps(scores + off);
                std::uint64_t x;
                std::memcpy(&x, truth + off, 8);
                const std::uint64_t nz = (((x & 0x7F7F7F7F7F7F7F7Full) + 0x7F7F7F7F7F7F7F7Full) | x) & 0x8080808080808080ull;
                y |= (nz >> 7) << k;
            }
            transpose8(r);
            for (int c = 0; c < 8; ++c) {
                // + 0.0f turns -0.0 into +0.0; key = bits ^ (positive ? 0x7FFFFFFF : 0) (see desc_key)
                const __m256i u = _mm256_castps_si256(_mm256_add_ps(r[c], zero));
                bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_and_si256(u, expo), expo));
                const __m256i key = _mm256_xor_si256(u, _mm256_andnot_si256(_mm256_srai_epi32(u, 31), low31));
                const unsigned m = static_cast<unsigned>(y >> (8 * c)) & 0xFFu;
                const std::int64_t col = jj + c;
                const int np = PYIMGCLS_POPCNT(m);
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(pp[col]),
                                    _mm256_permutevar8x32_epi32(key, _mm256_load_si256(reinterpret_cast<const __m256i*>(kPack.left[m]))));
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(qq[col] - 8),
                                    _mm256_permutevar8x32_epi32(key, _mm256_load_si256(reinterpret_cast<const __m256i*>(kPack.right[m ^ 0xFFu]))));
                pp[col] += np;
                qq[col] -= 8 - np;
            }
        }
    }
    for (std::int64_t c = 0; c < w8; ++c) {
        blk.np[c] = static_cast<std::size_t>(pp[c] - blk.pos(c));
        blk.nn[c] = static_cast<std::size_t>(blk.neg_end(c) - qq[c]);
    }
    return _mm256_testz_si256(bad, bad) != 0;
}

bool has_avx2() {
    static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
    return has;
}
#endif

template <typename T>
void gather_block(const T* scores, const std::uint8_t* truth, std::int64_t n, std::int64_t L, std::int64_t j0,
                  std::int64_t w, Block<KeyOf<T>>& blk) {
    std::fill(blk.np, blk.np + w, 0);
    std::fill(blk.nn, blk.nn + w, 0);
    bool ok = true;
#if PYIMGCLS_AVX2_DISPATCH
    const bool simd = std::is_same_v<T, float> && has_avx2();
#else
    const bool simd = false;
#endif
    const std::int64_t w8 = simd ? (w & ~std::int64_t(7)) : 0, n8 = n & ~std::int64_t(7);
    for (std::int64_t i0 = 0; i0 < n; i0 += kTile) {  // the tile stays in cache for the scalar columns
        const std::int64_t i1 = std::min(n, i0 + kTile), iv = std::min(i1, n8);
#if PYIMGCLS_AVX2_DISPATCH
        if constexpr (std::is_same_v<T, float>) {
            if (w8 > 0 && iv > i0) ok &= gather_avx2(scores, truth, L, j0, i0, iv, w8, blk);
            if (w8 > 0 && i1 > iv) ok &= gather_scalar(scores, truth, L, j0, iv, i1, 0, w8, blk);
        }
#endif
        ok &= gather_scalar(scores, truth, L, j0, i0, i1, w8, w, blk);
        (void)iv;
    }
    if (!ok) throw_first_nonfinite(scores, n, L);
}

// --------------------------------------------------------------------------------- sort and merge
// Fallback (and reference): both sides sorted, one merge walk.
template <typename Key>
void ap_auc_sorted(Key* pos, std::size_t np, Key* neg, std::size_t nn, Key* tmp, double* ap, double* auc) {
    const Key* p = radix_sort_bare<12>(pos, tmp, np);
    if (p == tmp) {  // keep the sorted positives out of the scratch the negatives need
        std::copy(tmp, tmp + np, pos);
        p = pos;
    }
    const Key* q = radix_sort_bare<12>(neg, tmp, nn);
    double sum_ap = 0, u = 0;
    std::size_t i = 0, j = 0;
    while (i < np) {
        const Key k = p[i];
        std::size_t i2 = i + 1;
        while (i2 < np && p[i2] == k) ++i2;
        while (j < nn && q[j] < k) ++j;  // negatives scoring strictly higher
        const std::size_t lt = j;
        while (j < nn && q[j] == k) ++j;  // tied negatives
        const double g = static_cast<double>(i2 - i), tp = static_cast<double>(i2), fp = static_cast<double>(j);
        sum_ap += g * (tp / (tp + fp));
        u += g * (static_cast<double>(nn - j) + 0.5 * static_cast<double>(j - lt));
        i = i2;
    }
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double P = static_cast<double>(np), N = static_cast<double>(nn);
    *ap = np > 0 ? sum_ap / P : nan;
    *auc = (np > 0 && nn > 0) ? u / (P * N) : nan;
}

// ------------------------------------------------------------------------------------- counting
template <typename Key>
struct Scratch {
    std::vector<Key> tmp, d, side;                  // radix scratch, distinct positive keys (+8 sentinels), side list
    std::vector<std::uint32_t> gsz, bk;             // group sizes, buckets
    std::vector<std::uint32_t> mixed, rank, first;  // bitset of buckets holding a key, its rank base, first key
    std::vector<std::uint8_t> hist;                 // negatives per fine bucket (+8 dummy, +8 pad)
    std::vector<std::uint32_t> cnt, words;          // exact counts, hist prefix per 8 buckets
    std::vector<double> tpv, fpv;                   // cumulative counts per positive tie group
};

// Fine bucketing of the positive key range [d0, dl]: bucket(x) = (x - d0) >> shift < nb.
template <typename Key>
struct Buckets {
    Key d0, dl;
    int shift;
    std::size_t nb;
};

struct HistResult {
    std::size_t side, above, below;
};

template <typename Key>
HistResult hist_scalar(const Key* neg, std::size_t nn, const Buckets<Key>& bu, const std::uint32_t* mixed,
                       std::uint8_t* hist, Key* side) {
    std::size_t ns = 0, above = 0, below = 0;
    for (std::size_t i = 0; i < nn; ++i) {
        const Key x = neg[i];
        const std::size_t lo = x < bu.d0;  // scores above every positive
        const Key xc = lo ? bu.d0 : x;
        const std::size_t raw = static_cast<std::size_t>((xc - bu.d0) >> bu.shift);
        const std::size_t hi = raw >= bu.nb;  // below every positive
        const std::size_t dummy = bu.nb + (i & 7);  // spread: no chain of increments on one byte
        std::size_t b = hi ? dummy : raw;
        b = lo ? dummy : b;
        above += lo;
        below += hi;
        ++hist[b];
        side[ns] = x;
        ns += (mixed[b >> 5] >> (b & 31)) & 1u;
    }
    return {ns, above, below};
}

#if PYIMGCLS_AVX2_DISPATCH
__attribute__((target("avx2,popcnt"))) HistResult hist_avx2(const std::uint32_t* neg, std::size_t nn, const Buckets<std::uint32_t>& bu,
                                                            const std::uint32_t* mixed, std::uint8_t* hist,
                                                            std::uint32_t* side) {
    const __m256i bias = _mm256_set1_epi32(static_cast<int>(0x80000000u));
    const __m256i vd0 = _mm256_set1_epi32(static_cast<int>(bu.d0));
    const __m256i vd0b = _mm256_xor_si256(vd0, bias), vnb = _mm256_set1_epi32(static_cast<int>(bu.nb));
    const __m256i dummy = _mm256_add_epi32(vnb, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m128i sh = _mm_cvtsi32_si128(bu.shift);
    const __m256i c31 = _mm256_set1_epi32(31);
    alignas(32) std::uint32_t bb[8];
    std::size_t ns = 0, above = 0, below = 0, i = 0;
    for (; i + 8 <= nn; i += 8) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(neg + i));
        const __m256i lo = _mm256_cmpgt_epi32(vd0b, _mm256_xor_si256(x, bias));  // x < d0 (unsigned)
        const __m256i raw = _mm256_srl_epi32(_mm256_sub_epi32(_mm256_max_epu32(x, vd0), vd0), sh);
        const __m256i rb = _mm256_min_epu32(raw, vnb);
        const __m256i hi = _mm256_andnot_si256(lo, _mm256_cmpeq_epi32(rb, vnb));
        const __m256i b = _mm256_blendv_epi8(rb, dummy, _mm256_or_si256(lo, hi));
        above += static_cast<std::size_t>(PYIMGCLS_POPCNT(static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(lo)))));
        below += static_cast<std::size_t>(PYIMGCLS_POPCNT(static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(hi)))));
        const __m256i word = _mm256_i32gather_epi32(reinterpret_cast<const int*>(mixed), _mm256_srli_epi32(b, 5), 4);
        const __m256i bit = _mm256_slli_epi32(_mm256_srlv_epi32(word, _mm256_and_si256(b, c31)), 31);
        const unsigned m = static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(bit)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(side + ns),
                            _mm256_permutevar8x32_epi32(x, _mm256_load_si256(reinterpret_cast<const __m256i*>(kPack.left[m]))));
        ns += static_cast<std::size_t>(PYIMGCLS_POPCNT(m));
        _mm256_store_si256(reinterpret_cast<__m256i*>(bb), b);
        ++hist[bb[0]];
        ++hist[bb[1]];
        ++hist[bb[2]];
        ++hist[bb[3]];
        ++hist[bb[4]];
        ++hist[bb[5]];
        ++hist[bb[6]];
        ++hist[bb[7]];
    }
    const HistResult rest = hist_scalar(neg + i, nn - i, bu, mixed, hist, side + ns);
    return {ns + rest.side, above + rest.above, below + rest.below};
}
#endif

#if PYIMGCLS_AVX2_DISPATCH
// lane[q] += gsz[k] * tp[k] / (tp[k] + fp[k]) for k = q (mod 4), four divisions per instruction;
// returns the number of groups done (a multiple of 4).
__attribute__((target("avx2"))) std::size_t precision_sum_avx2(const double* tp, const double* fp, const std::uint32_t* gsz,
                                                              std::size_t g, double* lane) {
    __m256d acc = _mm256_loadu_pd(lane);
    std::size_t k = 0;
    for (; k + 4 <= g; k += 4) {
        const __m256d t = _mm256_loadu_pd(tp + k), f = _mm256_loadu_pd(fp + k);
        const __m256d w = _mm256_cvtepi32_pd(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gsz + k)));
        acc = _mm256_add_pd(acc, _mm256_mul_pd(w, _mm256_div_pd(t, _mm256_add_pd(t, f))));
    }
    _mm256_storeu_pd(lane, acc);
    return k;
}
#endif

#if PYIMGCLS_AVX2_DISPATCH
// words[w] = run + bytes of hist before 8 * w, four 8-byte sums per instruction (psadbw); returns the
// words done (a multiple of 4) and leaves run at their total.
__attribute__((target("avx2"))) std::size_t word_sums_avx2(const std::uint8_t* hist, std::size_t nw, std::uint32_t* words,
                                                          std::uint32_t& run) {
    alignas(32) std::uint64_t sums[4];
    std::size_t w = 0;
    for (; w + 4 <= nw; w += 4) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hist + 8 * w));
        _mm256_store_si256(reinterpret_cast<__m256i*>(sums), _mm256_sad_epu8(v, _mm256_setzero_si256()));
        for (int q = 0; q < 4; ++q) {
            words[w + q] = run;
            run += static_cast<std::uint32_t>(sums[q]);
        }
    }
    return w;
}
#endif

// Sum of 8 bytes (SWAR: pairs into 16-bit lanes, then one multiply folds the lanes).
inline std::uint32_t byte_sum(std::uint64_t v) {
    const std::uint64_t m = 0x00FF00FF00FF00FFull;
    const std::uint64_t t = (v & m) + ((v >> 8) & m);
    return static_cast<std::uint32_t>((t * 0x0001000100010001ull) >> 48);
}

// Returns false when a fine bucket overflowed its byte (the caller sorts instead). Compiled twice:
// portable, and inside an AVX2 + POPCNT function (Simd), where the popcounts are one instruction.
template <bool Simd, typename Key>
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
inline bool ap_auc_count_body(Key* pos, std::size_t np, const Key* neg, std::size_t nn, Scratch<Key>& S, double* ap,
                              double* auc) {
    constexpr int kKeyBits = static_cast<int>(sizeof(Key)) * 8;
    auto popcount = [](std::uint32_t x) { return Simd ? PYIMGCLS_POPCNT(x) : popcount32(x); };
    const double nan = std::numeric_limits<double>::quiet_NaN();
    if (np == 0) {
        *ap = *auc = nan;
        return true;
    }
    if (nn >= (std::size_t(1) << 31)) return false;  // the uint32 counts below could wrap
    // sort the positives relative to their smallest key: leading digits that are zero for all are skipped
    Key kmin = pos[0], kmax = pos[0];
    for (std::size_t i = 1; i < np; ++i) {
        kmin = std::min(kmin, pos[i]);
        kmax = std::max(kmax, pos[i]);
    }
    for (std::size_t i = 0; i < np; ++i) pos[i] -= kmin;
    S.tmp.resize(std::max(S.tmp.size(), np));
    const Key* p = np < 4096 ? radix_sort_bare<8>(pos, S.tmp.data(), np) : radix_sort_bare<12>(pos, S.tmp.data(), np);

    Buckets<Key> bu;
    bu.d0 = kmin;
    bu.dl = kmax;
    const Key range = bu.dl - bu.d0;
    int bits = 0, pb = 0;
    while (bits < kKeyBits && (range >> bits) != 0) ++bits;
    while ((std::size_t(1) << pb) < np) ++pb;
    const int fb = std::min(kFineBits, pb + 4);  // about 16 buckets per positive, at most 2^17
    bu.shift = bits > fb ? bits - fb : 0;
    bu.nb = (static_cast<std::size_t>(range) >> bu.shift) + 1;

    const std::size_t nwords = bu.nb / 32 + 2;
    S.d.resize(np + 8);
    S.gsz.resize(np);
    S.bk.resize(np);
    S.first.resize(np + 1);
    S.mixed.assign(nwords, 0);
    S.hist.assign(bu.nb + 16, 0);
    Key* d = S.d.data();
    std::uint32_t* gsz = S.gsz.data();
    std::uint32_t* bk = S.bk.data();
    std::uint32_t* first = S.first.data();
    std::uint32_t* mixed = S.mixed.data();
    std::uint8_t* hist = S.hist.data();

    // distinct keys, their bucket, and the first key of each bucket that holds one
    std::size_t g = 0, nm = 0;
    for (std::size_t i = 0; i < np; ++i) {
        const Key k = p[i];  // relative to d0
        if (i > 0 && k == p[i - 1]) {
            ++gsz[g - 1];
            continue;
        }
        const auto b = static_cast<std::uint32_t>(k >> bu.shift);
        d[g] = k + bu.d0;
        gsz[g] = 1;
        bk[g] = b;
        if (g == 0 || b != bk[g - 1]) {
            mixed[b >> 5] |= 1u << (b & 31);
            first[nm++] = static_cast<std::uint32_t>(g);
        }
        ++g;
    }
    std::fill(d + g, d + g + 8, std::numeric_limits<Key>::max());  // sentinels: above every finite key
    first[nm] = static_cast<std::uint32_t>(g);
    S.rank.resize(nwords + 1);
    std::uint32_t* rank = S.rank.data();  // rank[w]: buckets holding a key in words < w
    for (std::size_t w = 0, r = 0; w < nwords; ++w) {
        rank[w] = static_cast<std::uint32_t>(r);
        r += static_cast<std::size_t>(popcount(mixed[w]));
    }

    S.side.resize(std::max(S.side.size(), nn + 8));
    Key* side = S.side.data();
    HistResult h;
#if PYIMGCLS_AVX2_DISPATCH
    if constexpr (Simd && std::is_same_v<Key, std::uint32_t>)
        h = hist_avx2(neg, nn, bu, mixed, hist, side);
    else
#endif
        h = hist_scalar(neg, nn, bu, mixed, hist, side);

    // prefix(x): negatives counted in buckets [0, x), from per-8-bucket sums
    const std::size_t nw8 = bu.nb / 8 + 2;
    S.words.resize(nw8 + 1);
    std::uint32_t* words = S.words.data();
    {
        std::uint32_t run = 0;
        std::size_t w = 0;
#if PYIMGCLS_AVX2_DISPATCH
        if constexpr (Simd) w = word_sums_avx2(hist, nw8, words, run);
#endif
        for (; w < nw8; ++w) {
            words[w] = run;
            std::uint64_t v;
            std::memcpy(&v, hist + 8 * w, 8);
            run += byte_sum(v);
        }
    }
    auto prefix = [&](std::size_t x) -> std::int64_t {
        std::uint64_t v;
        std::memcpy(&v, hist + (x & ~std::size_t(7)), 8);
        const unsigned r = static_cast<unsigned>(x & 7);
        const std::uint64_t mask = r ? (~std::uint64_t(0) >> (64 - 8 * r)) : 0;
        return static_cast<std::int64_t>(words[x >> 3]) + byte_sum(v & mask);
    };
    // The walk reads only the bytes of buckets without a key (their negatives are not in the side
    // list): a wrapped byte among those shows as a smaller total. Bytes of buckets with a key may wrap.
    std::uint64_t keyed = 0;
    for (std::size_t r = 0; r < nm; ++r) keyed += hist[bk[first[r]]];
    if (static_cast<std::uint64_t>(prefix(bu.nb)) - keyed != nn - h.above - h.below - h.side) {
        for (std::size_t i = 0; i < np; ++i) pos[i] += kmin;  // pos holds a permutation of the relative keys
        return false;
    }

    // negatives of buckets that hold a key: placed exactly (index of the first key >= x, tie flag)
    S.cnt.assign(2 * g + 2, 0);
    std::uint32_t* cnt = S.cnt.data();
    cnt[0] = static_cast<std::uint32_t>(h.above);
    for (std::size_t i = 0; i < h.side; ++i) {
        const Key x = side[i];
        const auto b = static_cast<std::uint32_t>((x - bu.d0) >> bu.shift);
        const std::uint32_t below_b = mixed[b >> 5] & ((1u << (b & 31)) - 1u);
        const std::size_t r = rank[b >> 5] + static_cast<std::uint32_t>(popcount(below_b));
        std::size_t idx = first[r];
        const std::size_t end = first[r + 1];  // past the bucket's keys: the next key, or the sentinel
        if (end - idx <= 8) {
            while (d[idx] < x) ++idx;
        } else {  // many keys in one bucket (clustered positive scores): binary search
            idx = static_cast<std::size_t>(std::lower_bound(d + idx, d + end, x) - d);
        }
        ++cnt[2 * idx + (d[idx] == x ? 1 : 0)];
    }

    // one walk over the positive tie groups, highest score first: cumulative counts, and the
    // Mann-Whitney sum in integers (2 * (negatives below + half the tied ones), per positive)
    S.tpv.resize(g + 4);
    S.fpv.resize(g + 4);
    double* tpv = S.tpv.data();
    double* fpv = S.fpv.data();
    std::uint64_t tp = 0, fp = 0, u2 = 0;
    std::int64_t prev_end = 0;  // prefix(bucket of the previous key + 1)
    for (std::size_t k = 0; k < g; ++k) {
        const std::int64_t at = prefix(bk[k]);
        const std::int64_t pure = at - prev_end;  // buckets strictly between: <= 0 when shared
        prev_end = at + hist[bk[k]];
        fp += static_cast<std::uint64_t>(pure > 0 ? pure : 0) + cnt[2 * k];
        const std::uint64_t tied = cnt[2 * k + 1];
        fp += tied;
        tp += gsz[k];
        u2 += gsz[k] * (2 * (nn - fp) + tied);
        tpv[k] = static_cast<double>(tp);
        fpv[k] = static_cast<double>(fp);
    }
    // sum of group size * precision: independent divisions, four lanes
    double lane[4] = {0, 0, 0, 0};
    std::size_t k = 0;
#if PYIMGCLS_AVX2_DISPATCH
    if constexpr (Simd) k = precision_sum_avx2(tpv, fpv, gsz, g, lane);
#endif
    for (; k + 4 <= g; k += 4)
        for (int q = 0; q < 4; ++q) lane[q] += gsz[k + q] * (tpv[k + q] / (tpv[k + q] + fpv[k + q]));
    for (; k < g; ++k) lane[0] += gsz[k] * (tpv[k] / (tpv[k] + fpv[k]));
    const double sum_ap = (lane[0] + lane[1]) + (lane[2] + lane[3]);
    const double P = static_cast<double>(np), N = static_cast<double>(nn);
    *ap = sum_ap / P;
    *auc = nn > 0 ? static_cast<double>(u2) / (2.0 * P * N) : nan;
    return true;
}

#if PYIMGCLS_AVX2_DISPATCH
template <typename Key>
__attribute__((target("avx2,popcnt"))) bool ap_auc_count_avx2(Key* pos, std::size_t np, const Key* neg, std::size_t nn,
                                                              Scratch<Key>& S, double* ap, double* auc) {
    return ap_auc_count_body<true>(pos, np, neg, nn, S, ap, auc);
}
#endif

template <typename Key>
bool ap_auc_count(Key* pos, std::size_t np, const Key* neg, std::size_t nn, Scratch<Key>& S, double* ap, double* auc) {
#if PYIMGCLS_AVX2_DISPATCH
    if (has_avx2()) return ap_auc_count_avx2(pos, np, neg, nn, S, ap, auc);
#endif
    return ap_auc_count_body<false>(pos, np, neg, nn, S, ap, auc);
}

template <typename T>
void ap_auc_columns_impl(const T* scores, const std::uint8_t* truth, std::int64_t n, std::int64_t L, int threads,
                         double* ap, double* auc) {
    using Key = KeyOf<T>;
    if (L <= 0) return;
    // blocks of 16 columns; a tail of fewer than 8 joins the last block
    std::int64_t blocks = (L + kBlock - 1) / kBlock;
    if (blocks > 1 && L % kBlock != 0 && L % kBlock < 8) --blocks;
    auto block_begin = [&](std::int64_t b) { return b * kBlock; };
    auto block_end = [&](std::int64_t b) { return b == blocks - 1 ? L : (b + 1) * kBlock; };
    const std::size_t cap = static_cast<std::size_t>(n) + kSlack;
    std::int64_t width = 0;
    for (std::int64_t b = 0; b < blocks; ++b) width = std::max(width, block_end(b) - block_begin(b));
    parallel_for(blocks, threads, [&](std::ptrdiff_t b0, std::ptrdiff_t b1) {
        // uninitialised: the gather is the first touch
        std::unique_ptr<Key[]> buf(new Key[static_cast<std::size_t>(width) * cap]);
        Block<Key> blk;
        blk.base = buf.get();
        blk.cap = cap;
        Scratch<Key> S;
        for (std::ptrdiff_t b = b0; b < b1; ++b) {
            const std::int64_t j0 = block_begin(b), w = block_end(b) - j0;
            gather_block(scores, truth, n, L, j0, w, blk);
            for (std::int64_t j = 0; j < w; ++j) {
                Key* pos = blk.pos(j);
                Key* neg = blk.neg_end(j) - blk.nn[j];
                if (!ap_auc_count(pos, blk.np[j], neg, blk.nn[j], S, ap + j0 + j, auc + j0 + j)) {
                    S.tmp.resize(std::max(S.tmp.size(), std::max(blk.np[j], blk.nn[j])));
                    ap_auc_sorted(pos, blk.np[j], neg, blk.nn[j], S.tmp.data(), ap + j0 + j, auc + j0 + j);
                }
            }
        }
    });
}

}  // namespace

void ap_auc_columns_f32(const float* scores, const std::uint8_t* truth, std::int64_t n, std::int64_t L, int threads,
                        double* ap, double* auc) {
    ap_auc_columns_impl(scores, truth, n, L, threads, ap, auc);
}

void ap_auc_columns_f64(const double* scores, const std::uint8_t* truth, std::int64_t n, std::int64_t L, int threads,
                        double* ap, double* auc) {
    ap_auc_columns_impl(scores, truth, n, L, threads, ap, auc);
}

}  // namespace pyimgcls::core
