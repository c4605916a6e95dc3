// NMS kernels (see nms.h for indices and conventions), instantiated for float and double: greedy NMS
// over a stable descending-score order (radix sort of desc_key) that checks each candidate against
// the kept boxes near its centre only (the grid below); batched NMS runs the classes in parallel and
// merges them by rank; soft-NMS (linear or Gaussian decay) is the plain O(N^2) loop; box IoU is dense,
// threaded over the rows of the first set.
#include "core/boxes/nms.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>

#include "core/common/parallel.h"
#include "core/common/radix.h"

namespace pyimgcls::core {
namespace {

template <typename T>
inline T area_of(const T* b) {
    return (b[2] - b[0]) * (b[3] - b[1]);
}

template <typename T>
inline bool degenerate(const T* b) {
    return !(b[2] > b[0] && b[3] > b[1]);
}

// torchvision's IoU expression, in T; `aa`, `ab` are the areas.
template <typename T>
inline T iou_t(const T* a, T aa, const T* b, T ab) {
    const T xx1 = std::max(a[0], b[0]), yy1 = std::max(a[1], b[1]);
    const T xx2 = std::min(a[2], b[2]), yy2 = std::min(a[3], b[3]);
    const T w = std::max(T(0), xx2 - xx1), h = std::max(T(0), yy2 - yy1);
    const T inter = w * h;
    return inter / (aa + ab - inter);
}

// Whether the grid's arithmetic is safe for a (non-degenerate) box: coordinates within +-1e250
// and sides of at least 1e-250, so that centres, radii, sums of widths, cell sizes and their
// inverses are finite and nonzero in double (the limits leave many decades of room), and an area
// of at least min / epsilon in T, so that T's rounding of the IoU stays relative (a subnormal
// intersection errs by at most epsilon^2) and the radius margin covers it. Any other box (finite,
// yet near the ends of the range) is checked against every kept box, and every later candidate
// checks it: the plain path, exact for any finite input.
template <typename T>
inline bool griddable(const T* b, T area) {
    constexpr double kMaxCoord = 1e250, kMinSide = 1e-250;
    const double x0 = b[0], y0 = b[1], x1 = b[2], y1 = b[3];
    return std::fabs(x0) <= kMaxCoord && std::fabs(y0) <= kMaxCoord && std::fabs(x1) <= kMaxCoord &&
           std::fabs(y1) <= kMaxCoord && x1 - x0 >= kMinSide && y1 - y0 >= kMinSide &&
           area >= std::numeric_limits<T>::min() / std::numeric_limits<T>::epsilon() &&
           area <= std::numeric_limits<T>::max();
}

// Spatial culling for greedy NMS. Kept boxes are filed by their centre in a uniform grid. If
// IoU(A, B) > t then the overlap width exceeds t * max(wA, wB) (inter > t * union >= t * area), so
//   wB < wA / t  and  |cxA - cxB| < (wA + wB) / 2 - t * max(wA, wB) <= wA * max(1 - t, 0.5 / t - 0.5),
// and in any case |cxA - cxB| < (wA + w_max) / 2 (any overlap). The same holds for y. A candidate
// therefore only needs the kept boxes whose centres fall in the cells within that radius; the
// radius carries a 1% margin, and the IoU itself is always computed exactly.
// Cells are about half the typical query radius, but never more than 2 per griddable box (and
// 2^20) in all, however far apart the boxes lie: memory is O(N) and the grid is built in O(N).
template <typename T>
struct Grid {
    double x0 = 0, y0 = 0, inv_w = 0, inv_h = 0, wmax = 0, hmax = 0, factor = 0;
    int cols = 1, rows = 1;
    std::vector<int> head;  // per cell: last entry or -1
    std::vector<int> next;  // per kept id: previous entry of its cell (-1 for kept boxes off the grid)

    void build(const T* boxes, const std::vector<std::int64_t>& ids, double t) {
        double minx = INFINITY, miny = INFINITY, maxx = -INFINITY, maxy = -INFINITY, sw = 0, sh = 0;
        std::size_t cnt = 0;
        for (std::int64_t id : ids) {
            const T* b = boxes + 4 * id;
            if (degenerate(b) || !griddable(b, area_of(b))) continue;
            const double w = double(b[2]) - double(b[0]), h = double(b[3]) - double(b[1]);
            const double cx = 0.5 * (double(b[0]) + double(b[2])), cy = 0.5 * (double(b[1]) + double(b[3]));
            minx = std::min(minx, cx);
            miny = std::min(miny, cy);
            maxx = std::max(maxx, cx);
            maxy = std::max(maxy, cy);
            wmax = std::max(wmax, w);
            hmax = std::max(hmax, h);
            sw += w;
            sh += h;
            ++cnt;
        }
        factor = t > 0 ? std::max(1.0 - t, 0.5 / t - 0.5) : INFINITY;
        head.assign(1, -1);
        if (cnt == 0) return;
        // cells of about half the typical query radius
        const double f = std::min(std::max(std::isfinite(factor) ? factor : 1.0, 0.05), 1.0);
        const double cw = 0.5 * f * sw / cnt, ch = 0.5 * f * sh / cnt;  // >= 2.5e-252 (griddable)
        const double max_cells = std::max<double>(1.0, std::min<double>(2.0 * cnt, 1 << 20));
        // each side within [1, max_cells] first (a ratio may be +inf), then both shrunk alike: as
        // c, r <= max_cells, both stay >= 1 and c * r <= max_cells
        double c = std::min(std::max(1.0, std::ceil((maxx - minx) / cw)), max_cells);
        double r = std::min(std::max(1.0, std::ceil((maxy - miny) / ch)), max_cells);
        if (c * r > max_cells) {
            const double k = std::sqrt(max_cells / (c * r));
            c = std::max(1.0, std::floor(c * k));
            r = std::max(1.0, std::floor(r * k));
        }
        cols = static_cast<int>(c);
        rows = static_cast<int>(r);
        x0 = minx;
        y0 = miny;
        // cols > 1 only when the span exceeds a cell, so cols / span < 2 / cw: finite
        inv_w = cols > 1 ? cols / (maxx - minx) : 0.0;
        inv_h = rows > 1 ? rows / (maxy - miny) : 0.0;
        head.assign(static_cast<std::size_t>(cols) * rows, -1);
    }
    // Cell column of x, clamped to the grid (NaN, impossible for griddable boxes, maps to 0).
    int cx(double x) const {
        const double v = std::floor((x - x0) * inv_w);
        return v >= cols ? cols - 1 : (v >= 0 ? static_cast<int>(v) : 0);
    }
    int cy(double y) const {
        const double v = std::floor((y - y0) * inv_h);
        return v >= rows ? rows - 1 : (v >= 0 ? static_cast<int>(v) : 0);
    }
    int cell_of(const T* b) const {
        return cy(0.5 * (double(b[1]) + double(b[3]))) * cols + cx(0.5 * (double(b[0]) + double(b[2])));
    }
    void insert(const T* b, int kept_id) {
        const int cell = cell_of(b);
        next.push_back(head[cell]);
        head[cell] = kept_id;
    }
    void insert_off_grid() { next.push_back(-1); }
    // Cell range [c0, c1] x [r0, r1] that can hold the centre of a box suppressing b.
    void query(const T* b, int& c0, int& c1, int& r0, int& r1) const {
        const double w = double(b[2]) - double(b[0]), h = double(b[3]) - double(b[1]);
        const double x = 0.5 * (double(b[0]) + double(b[2])), y = 0.5 * (double(b[1]) + double(b[3]));
        const double rx = std::min(factor * w, 0.5 * (w + wmax)) * 1.01 + 1e-9 * (std::fabs(x) + w);
        const double ry = std::min(factor * h, 0.5 * (h + hmax)) * 1.01 + 1e-9 * (std::fabs(y) + h);
        c0 = cx(x - rx);
        c1 = cx(x + rx);
        r0 = cy(y - ry);
        r1 = cy(y + ry);
    }
};

}  // namespace

template <typename T>
void check_finite(const T* values, std::int64_t count, const char* what, int per_row) {
    for (std::int64_t i = 0; i < count; ++i)
        if (!std::isfinite(values[i]))
            throw std::invalid_argument(std::string(what) + " must be finite, found " +
                                        std::to_string(double(values[i])) + " at index " +
                                        std::to_string(per_row > 1 ? i / per_row : i));
}

template <typename T>
void nms_ordered(const T* boxes, const std::vector<std::int64_t>& order, double iou_threshold,
                 std::int64_t max_output, std::vector<std::int64_t>& keep) {
    const std::size_t start = keep.size();
    if (order.empty() || max_output == 0) return;
    Grid<T> grid;
    grid.build(boxes, order, iou_threshold);
    struct Kept {
        T box[4];
        T area;
    };
    std::vector<Kept> kept;  // kept id -> box and area, contiguous for the inner loop
    const std::int64_t limit = max_output < 0 ? INT64_MAX : max_output;
    std::vector<int> off_grid;  // kept ids of boxes that are not griddable
    for (std::int64_t i : order) {
        const T* b = boxes + 4 * i;
        if (!degenerate(b)) {  // degenerate boxes have IoU 0: kept, and never suppress
            const T ab = area_of(b);
            auto suppresses = [&](int k) {
                return static_cast<double>(iou_t(kept[k].box, kept[k].area, b, ab)) > iou_threshold;
            };
            bool suppressed = false;
            const bool on_grid = griddable(b, ab);
            int c0 = 0, c1 = 0, r0 = 0, r1 = 0;
            if (on_grid) grid.query(b, c0, c1, r0, r1);
            const double cells = double(c1 - c0 + 1) * double(r1 - r0 + 1);
            if (!on_grid || cells > double(kept.size())) {
                for (int k = 0, n = static_cast<int>(kept.size()); k < n && !suppressed; ++k)
                    suppressed = suppresses(k);
            } else {
                for (std::size_t j = 0; j < off_grid.size() && !suppressed; ++j) suppressed = suppresses(off_grid[j]);
                // the candidate's own cell first: a suppressing box usually sits right there
                const int own = grid.cell_of(b);
                for (int k = grid.head[own]; k >= 0 && !suppressed; k = grid.next[k]) suppressed = suppresses(k);
                for (int r = r0; r <= r1 && !suppressed; ++r)
                    for (int c = c0; c <= c1 && !suppressed; ++c) {
                        const int cell = r * grid.cols + c;
                        if (cell == own) continue;
                        for (int k = grid.head[cell]; k >= 0; k = grid.next[k])
                            if (suppresses(k)) {
                                suppressed = true;
                                break;
                            }
                    }
            }
            if (suppressed) continue;
            const int kid = static_cast<int>(kept.size());
            kept.push_back({{b[0], b[1], b[2], b[3]}, ab});
            if (on_grid) {
                grid.insert(b, kid);
            } else {
                grid.insert_off_grid();
                off_grid.push_back(kid);
            }
        }
        keep.push_back(i);
        if (static_cast<std::int64_t>(keep.size() - start) >= limit) break;
    }
}

namespace {
// Stable order of the candidates by descending score: an LSD radix sort (11-bit digits) of the
// score keys, which is stable, so equal scores keep input order.
template <typename T>
std::vector<std::int64_t> sorted_candidates(const T* scores, std::int64_t n, const NMSOptions& opt) {
    using Key = decltype(desc_key(T{}));
    std::vector<Key> keys;
    std::vector<std::int64_t> idx;
    keys.reserve(static_cast<std::size_t>(n));
    idx.reserve(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i)
        if (!opt.use_score_threshold || static_cast<double>(scores[i]) > opt.score_threshold) {
            keys.push_back(desc_key(scores[i]));
            idx.push_back(i);
        }
    const std::size_t m = keys.size();
    if (m < 256) {
        std::vector<std::size_t> p(m);
        std::iota(p.begin(), p.end(), std::size_t{0});
        std::stable_sort(p.begin(), p.end(), [&](std::size_t a, std::size_t b) { return keys[a] < keys[b]; });
        std::vector<std::int64_t> order(m);
        for (std::size_t k = 0; k < m; ++k) order[k] = idx[p[k]];
        return order;
    }
    std::vector<Key> k2;
    std::vector<std::int64_t> i2;
    radix_sort_by_key(keys, idx, k2, i2);
    return idx;
}
}  // namespace

template <typename T>
std::vector<std::int64_t> nms(const T* boxes, const T* scores, std::int64_t n, const NMSOptions& opt) {
    std::vector<std::int64_t> order = sorted_candidates(scores, n, opt);
    std::vector<std::int64_t> keep;
    nms_ordered(boxes, order, opt.iou_threshold, opt.max_output, keep);
    return keep;
}

template <typename T>
std::vector<std::int64_t> batched_nms(const T* boxes, const T* scores, const std::int64_t* classes,
                                      std::int64_t n, const NMSOptions& opt, int threads) {
    std::vector<std::int64_t> order = sorted_candidates(scores, n, opt);
    // rank of each box in the global order, to merge per-class results back
    std::vector<std::int64_t> rank(static_cast<std::size_t>(n), -1);
    for (std::size_t r = 0; r < order.size(); ++r) rank[order[r]] = static_cast<std::int64_t>(r);
    // stable partition by class (classes renumbered densely in order of first appearance)
    std::vector<std::int64_t> cls_of;
    std::vector<std::vector<std::int64_t>> groups;
    {
        std::vector<std::int64_t> uniq(order.size());
        for (std::size_t r = 0; r < order.size(); ++r) uniq[r] = classes[order[r]];
        std::vector<std::int64_t> sorted_u = uniq;
        std::sort(sorted_u.begin(), sorted_u.end());
        sorted_u.erase(std::unique(sorted_u.begin(), sorted_u.end()), sorted_u.end());
        groups.resize(sorted_u.size());
        for (std::size_t r = 0; r < order.size(); ++r) {
            const auto g = std::lower_bound(sorted_u.begin(), sorted_u.end(), uniq[r]) - sorted_u.begin();
            groups[g].push_back(order[r]);
        }
    }
    std::vector<std::vector<std::int64_t>> kept(groups.size());
    parallel_for_dynamic(static_cast<std::ptrdiff_t>(groups.size()), threads, [&](std::ptrdiff_t g) {
        nms_ordered(boxes, groups[g], opt.iou_threshold, opt.max_output, kept[g]);
    });
    std::vector<std::int64_t> ranks;
    for (auto& k : kept)
        for (std::int64_t i : k) ranks.push_back(rank[i]);
    std::sort(ranks.begin(), ranks.end());
    if (opt.max_output >= 0 && static_cast<std::int64_t>(ranks.size()) > opt.max_output) ranks.resize(opt.max_output);
    std::vector<std::int64_t> out(ranks.size());
    for (std::size_t i = 0; i < ranks.size(); ++i) out[i] = order[ranks[i]];
    return out;
}

template <typename T>
void soft_nms(const T* boxes, const T* scores, std::int64_t n, int method, double sigma,
              double iou_threshold, double score_threshold, std::vector<std::int64_t>& keep,
              std::vector<T>& new_scores) {
    std::vector<std::int64_t> alive;
    std::vector<double> s;
    for (std::int64_t i = 0; i < n; ++i)
        if (static_cast<double>(scores[i]) >= score_threshold) {
            alive.push_back(i);
            s.push_back(static_cast<double>(scores[i]));
        }
    while (!alive.empty()) {
        std::size_t best = 0;
        for (std::size_t k = 1; k < alive.size(); ++k)
            if (s[k] > s[best] || (s[k] == s[best] && alive[k] < alive[best])) best = k;
        const std::int64_t bi = alive[best];
        keep.push_back(bi);
        new_scores.push_back(static_cast<T>(s[best]));
        alive[best] = alive.back();
        s[best] = s.back();
        alive.pop_back();
        s.pop_back();
        const T* b = boxes + 4 * bi;
        const bool bdeg = degenerate(b);
        const T ab = area_of(b);
        std::size_t w = 0;
        for (std::size_t k = 0; k < alive.size(); ++k) {
            const T* c = boxes + 4 * alive[k];
            double iou = (bdeg || degenerate(c)) ? 0.0 : static_cast<double>(iou_t(b, ab, c, area_of(c)));
            double weight;
            if (method == 0) weight = iou > iou_threshold ? 1.0 - iou : 1.0;
            else weight = std::exp(-(iou * iou) / sigma);
            const double ns = s[k] * weight;
            if (ns >= score_threshold) {
                alive[w] = alive[k];
                s[w] = ns;
                ++w;
            }
        }
        alive.resize(w);
        s.resize(w);
    }
}

template <typename T>
void box_iou(const T* a, std::int64_t n, const T* b, std::int64_t m, T* out, int threads) {
    parallel_for(n, threads, [&](std::ptrdiff_t lo, std::ptrdiff_t hi) {
        for (std::ptrdiff_t i = lo; i < hi; ++i) {
            const T* p = a + 4 * i;
            const bool pd = degenerate(p);
            const T pa = area_of(p);
            for (std::int64_t j = 0; j < m; ++j) {
                const T* q = b + 4 * j;
                out[i * m + j] = (pd || degenerate(q)) ? T(0) : iou_t(p, pa, q, area_of(q));
            }
        }
    }, 64);
}

#define PYIMGCLS_INSTANTIATE(T)                                                                        \
    template void nms_ordered<T>(const T*, const std::vector<std::int64_t>&, double, std::int64_t,  \
                                 std::vector<std::int64_t>&);                                        \
    template std::vector<std::int64_t> nms<T>(const T*, const T*, std::int64_t, const NMSOptions&);   \
    template std::vector<std::int64_t> batched_nms<T>(const T*, const T*, const std::int64_t*,        \
                                                      std::int64_t, const NMSOptions&, int);          \
    template void soft_nms<T>(const T*, const T*, std::int64_t, int, double, double, double,          \
                              std::vector<std::int64_t>&, std::vector<T>&);                           \
    template void box_iou<T>(const T*, std::int64_t, const T*, std::int64_t, T*, int);                \
    template void check_finite<T>(const T*, std::int64_t, const char*, int);

PYIMGCLS_INSTANTIATE(float)
PYIMGCLS_INSTANTIATE(double)

}  // namespace pyimgcls::core
