#include "core/nms.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include "core/parallel.h"

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

// Uniform grid over kept boxes; cells hold singly linked lists of kept ids.
template <typename T>
struct Grid {
    double x0 = 0, y0 = 0, inv_w = 1, inv_h = 1;
    int cols = 1, rows = 1;
    std::vector<int> head;     // per cell: last entry or -1
    std::vector<int> next;     // per entry
    std::vector<int> item;     // per entry: kept id
    std::vector<int> wide;     // kept ids registered in too many cells: always checked
    static constexpr int kMaxSpan = 16;

    void build(const T* boxes, const std::vector<std::int64_t>& ids) {
        double minx = INFINITY, miny = INFINITY, maxx = -INFINITY, maxy = -INFINITY, sw = 0, sh = 0;
        std::size_t cnt = 0;
        for (std::int64_t id : ids) {
            const T* b = boxes + 4 * id;
            if (degenerate(b)) continue;
            minx = std::min(minx, double(b[0]));
            miny = std::min(miny, double(b[1]));
            maxx = std::max(maxx, double(b[2]));
            maxy = std::max(maxy, double(b[3]));
            sw += double(b[2]) - double(b[0]);
            sh += double(b[3]) - double(b[1]);
            ++cnt;
        }
        if (cnt == 0) {
            head.assign(1, -1);
            return;
        }
        const double cw = std::max(sw / cnt, 1e-12), ch = std::max(sh / cnt, 1e-12);
        const double max_cells = std::max<double>(1.0, std::min<double>(4.0 * cnt, 1 << 20));
        double c = std::ceil((maxx - minx) / cw), r = std::ceil((maxy - miny) / ch);
        c = std::max(1.0, c);
        r = std::max(1.0, r);
        if (c * r > max_cells) {
            const double f = std::sqrt(max_cells / (c * r));
            c = std::max(1.0, std::floor(c * f));
            r = std::max(1.0, std::floor(r * f));
        }
        cols = static_cast<int>(c);
        rows = static_cast<int>(r);
        x0 = minx;
        y0 = miny;
        inv_w = cols / std::max(maxx - minx, 1e-300);
        inv_h = rows / std::max(maxy - miny, 1e-300);
        head.assign(static_cast<std::size_t>(cols) * rows, -1);
    }
    int cx(double x) const {
        double v = std::floor((x - x0) * inv_w);
        return v < 0 ? 0 : (v >= cols ? cols - 1 : static_cast<int>(v));
    }
    int cy(double y) const {
        double v = std::floor((y - y0) * inv_h);
        return v < 0 ? 0 : (v >= rows ? rows - 1 : static_cast<int>(v));
    }
    void insert(const T* b, int kept_id) {
        const int c0 = cx(b[0]), c1 = cx(b[2]), r0 = cy(b[1]), r1 = cy(b[3]);
        if ((c1 - c0 + 1) * (r1 - r0 + 1) > kMaxSpan) {
            wide.push_back(kept_id);
            return;
        }
        for (int r = r0; r <= r1; ++r)
            for (int c = c0; c <= c1; ++c) {
                const int cell = r * cols + c;
                next.push_back(head[cell]);
                item.push_back(kept_id);
                head[cell] = static_cast<int>(item.size()) - 1;
            }
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
    grid.build(boxes, order);
    std::vector<std::int64_t> kept_idx;  // kept id -> box index
    std::vector<T> kept_area;
    std::vector<std::int64_t> stamp;     // kept id -> last candidate that checked it
    const std::int64_t limit = max_output < 0 ? INT64_MAX : max_output;
    std::int64_t pos = 0;
    for (std::int64_t i : order) {
        const T* b = boxes + 4 * i;
        ++pos;
        if (degenerate(b)) {  // IoU 0 with everything: always kept, never suppresses
            keep.push_back(i);
            if (static_cast<std::int64_t>(keep.size() - start) >= limit) break;
            continue;
        }
        const T ab = area_of(b);
        bool suppressed = false;
        auto test = [&](int k) {
            if (stamp[k] == pos) return false;
            stamp[k] = pos;
            const T* kb = boxes + 4 * kept_idx[k];
            return static_cast<double>(iou_t(kb, kept_area[k], b, ab)) > iou_threshold;
        };
        for (int k : grid.wide)
            if (test(k)) { suppressed = true; break; }
        if (!suppressed) {
            const int c0 = grid.cx(b[0]), c1 = grid.cx(b[2]), r0 = grid.cy(b[1]), r1 = grid.cy(b[3]);
            for (int r = r0; r <= r1 && !suppressed; ++r)
                for (int c = c0; c <= c1 && !suppressed; ++c)
                    for (int e = grid.head[r * grid.cols + c]; e >= 0; e = grid.next[e])
                        if (test(grid.item[e])) { suppressed = true; break; }
        }
        if (suppressed) continue;
        const int kid = static_cast<int>(kept_idx.size());
        kept_idx.push_back(i);
        kept_area.push_back(ab);
        stamp.push_back(0);
        grid.insert(b, kid);
        keep.push_back(i);
        if (static_cast<std::int64_t>(keep.size() - start) >= limit) break;
    }
}

namespace {
template <typename T>
std::vector<std::int64_t> sorted_candidates(const T* scores, std::int64_t n, const NMSOptions& opt) {
    std::vector<std::int64_t> order;
    order.reserve(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i)
        if (!opt.use_score_threshold || static_cast<double>(scores[i]) > opt.score_threshold) order.push_back(i);
    std::stable_sort(order.begin(), order.end(),
                     [scores](std::int64_t a, std::int64_t b) { return scores[a] > scores[b]; });
    return order;
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
