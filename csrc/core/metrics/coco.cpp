// COCO bbox evaluation (see coco.h for indices and conventions): categories run in parallel; per
// category, pycocotools' evaluateImg for every (image, area range), then accumulate per IoU threshold,
// area range and max_dets.
#include "core/metrics/coco.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>

#include "core/common/parallel.h"

namespace pyimgcls::core {
namespace {

// pycocotools maskApi.c bbIou, one pair
inline double bb_iou(const double* d, const double* g, bool crowd) {
    const double ga = g[2] * g[3], da = d[2] * d[3];
    const double w = std::fmin(d[2] + d[0], g[2] + g[0]) - std::fmax(d[0], g[0]);
    if (w <= 0) return 0.0;
    const double h = std::fmin(d[3] + d[1], g[3] + g[1]) - std::fmax(d[1], g[1]);
    if (h <= 0) return 0.0;
    const double i = w * h;
    const double u = crowd ? da : da + ga - i;
    return i / u;
}

// evaluateImg result for one (image, category, area range)
struct ImgEval {
    bool present = false;
    std::vector<double> scores;             // D, sorted descending
    std::vector<std::uint8_t> matched;      // T * D, pycocotools' dtMatches != 0
    std::vector<std::uint8_t> ignored;      // T * D
    std::int64_t n_gt_not_ignored = 0;
};

// The shortest decimal that reads back as v, for messages.
std::string num(double v) {
    char buf[40];
    for (int digits = 6; digits <= 17; ++digits) {
        std::snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (std::strtod(buf, nullptr) == v) break;
    }
    return buf;
}

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("coco_evaluate: " + what); }

// begin[0] == 0, non-decreasing, begin.back() == count (begin is not empty).
void check_offsets(const std::vector<std::int64_t>& begin, std::size_t count, const char* name, const char* of) {
    const std::string n = name;
    if (begin[0] != 0) bad(n + " must start at 0, got " + n + "[0] = " + std::to_string(begin[0]));
    for (std::size_t i = 1; i < begin.size(); ++i)
        if (begin[i] < begin[i - 1])
            bad(n + " must be non-decreasing, got " + n + "[" + std::to_string(i - 1) + "] = " +
                std::to_string(begin[i - 1]) + " > " + n + "[" + std::to_string(i) + "] = " + std::to_string(begin[i]));
    if (begin.back() != static_cast<std::int64_t>(count))
        bad(n + " must end at len(" + of + ") = " + std::to_string(count) + ", got " + n + "[-1] = " +
            std::to_string(begin.back()));
}

void check_size(std::size_t got, std::size_t want, const char* name, const char* what) {
    if (got != want)
        bad(std::string(name) + " must hold " + what + " (" + std::to_string(want) + " values), got " +
            std::to_string(got));
}

// every value finite; per > 1: the message names the box (index / per) as `unit`
void check_finite(const std::vector<double>& v, const char* name, int per, const char* unit) {
    for (std::size_t i = 0; i < v.size(); ++i)
        if (!std::isfinite(v[i]))
            bad(std::string(name) + " must be finite, got " + num(v[i]) + " at " + unit + (*unit ? " " : "") +
                std::to_string(i / per));
}

void check_unit(const std::vector<double>& v, const char* name) {
    for (std::size_t i = 0; i < v.size(); ++i)
        if (!(v[i] >= 0.0 && v[i] <= 1.0))
            bad(std::string(name) + " must be in [0, 1], got " + name + "[" + std::to_string(i) + "] = " + num(v[i]));
}

void check_count(std::size_t n, const char* name) {
    if (n > static_cast<std::size_t>(INT_MAX))
        bad(std::string(name) + " must have fewer than 2^31 entries, got " + std::to_string(n));
}

}  // namespace

void coco_check(const CocoData& data, const std::vector<std::int64_t>& cat_ids, const CocoParams& p) {
    const std::size_t ng = data.gt_cat.size(), nd = data.dt_cat.size();
    if (data.gt_begin.empty())
        bad("gt_begin must have at least 1 entry (images + 1), got 0");
    if (data.dt_begin.size() != data.gt_begin.size())
        bad("dt_begin must have len(gt_begin) = " + std::to_string(data.gt_begin.size()) +
            " entries (images + 1), got " + std::to_string(data.dt_begin.size()));
    check_offsets(data.gt_begin, ng, "gt_begin", "gt_cat");
    check_offsets(data.dt_begin, nd, "dt_begin", "dt_cat");
    check_size(data.gt_box.size(), 4 * ng, "gt_box", "4 values per ground truth, 4 * len(gt_cat)");
    check_size(data.gt_crowd.size(), ng, "gt_crowd", "one value per ground truth, len(gt_cat)");
    check_size(data.gt_area.size(), ng, "gt_area", "one value per ground truth, len(gt_cat)");
    check_size(data.gt_id.size(), ng, "gt_id", "one value per ground truth, len(gt_cat)");
    check_size(data.dt_box.size(), 4 * nd, "dt_box", "4 values per detection, 4 * len(dt_cat)");
    check_size(data.dt_score.size(), nd, "dt_score", "one value per detection, len(dt_cat)");
    check_finite(data.gt_box, "gt_box", 4, "ground truth");
    check_finite(data.gt_area, "gt_area", 1, "");
    check_finite(data.dt_box, "dt_box", 4, "detection");
    check_finite(data.dt_score, "dt_score", 1, "");
    check_unit(p.iou_thrs, "iou_thrs");
    check_unit(p.rec_thrs, "rec_thrs");
    for (std::size_t i = 1; i < p.rec_thrs.size(); ++i)
        if (p.rec_thrs[i] < p.rec_thrs[i - 1])
            bad("rec_thrs must be ascending, got rec_thrs[" + std::to_string(i - 1) + "] = " + num(p.rec_thrs[i - 1]) +
                " > rec_thrs[" + std::to_string(i) + "] = " + num(p.rec_thrs[i]));
    for (std::size_t i = 0; i < p.area_rngs.size(); ++i)
        if (!(p.area_rngs[i][0] <= p.area_rngs[i][1]))
            bad("area_rngs[" + std::to_string(i) + "] must satisfy lo <= hi, got [" + num(p.area_rngs[i][0]) + ", " +
                num(p.area_rngs[i][1]) + "]");
    if (p.max_dets.empty()) bad("max_dets must not be empty");
    for (std::size_t i = 0; i < p.max_dets.size(); ++i) {
        if (p.max_dets[i] < 0)
            bad("max_dets must be >= 0, got max_dets[" + std::to_string(i) + "] = " + std::to_string(p.max_dets[i]));
        if (i > 0 && p.max_dets[i] < p.max_dets[i - 1])
            bad("max_dets must be ascending, got max_dets[" + std::to_string(i - 1) + "] = " +
                std::to_string(p.max_dets[i - 1]) + " > max_dets[" + std::to_string(i) + "] = " +
                std::to_string(p.max_dets[i]));
    }
    check_count(p.iou_thrs.size(), "iou_thrs");
    check_count(p.rec_thrs.size(), "rec_thrs");
    check_count(cat_ids.size(), "cat_ids");
    check_count(p.area_rngs.size(), "area_rngs");
    check_count(p.max_dets.size(), "max_dets");
}

void coco_evaluate(const CocoData& data, const std::vector<std::int64_t>& cat_ids, const CocoParams& p,
                   int threads, double* precision, double* recall) {
    coco_check(data, cat_ids, p);
    const std::int64_t I = static_cast<std::int64_t>(data.gt_begin.size()) - 1;
    const int T = static_cast<int>(p.iou_thrs.size()), R = static_cast<int>(p.rec_thrs.size());
    const int K = static_cast<int>(cat_ids.size()), A = static_cast<int>(p.area_rngs.size());
    const int M = static_cast<int>(p.max_dets.size());
    const std::int64_t max_det_all = p.max_dets.back();
    std::fill(precision, precision + static_cast<std::size_t>(T) * R * K * A * M, -1.0);
    std::fill(recall, recall + static_cast<std::size_t>(T) * K * A * M, -1.0);

    parallel_for_dynamic(K, threads, [&](std::ptrdiff_t k) {
        const std::int64_t cat = cat_ids[k];
        std::vector<ImgEval> evals(static_cast<std::size_t>(I) * A);  // [image][area]
        std::vector<std::int64_t> g, d, gsorted;
        std::vector<double> ious;
        std::vector<std::uint8_t> gt_ig, gtm, credit;
        for (std::int64_t i = 0; i < I; ++i) {
            g.clear();
            d.clear();
            for (std::int64_t j = data.gt_begin[i]; j < data.gt_begin[i + 1]; ++j)
                if (data.gt_cat[j] == cat) g.push_back(j);
            for (std::int64_t j = data.dt_begin[i]; j < data.dt_begin[i + 1]; ++j)
                if (data.dt_cat[j] == cat) d.push_back(j);
            if (g.empty() && d.empty()) continue;
            std::stable_sort(d.begin(), d.end(), [&](std::int64_t a, std::int64_t b) {
                return data.dt_score[a] > data.dt_score[b];
            });
            if (static_cast<std::int64_t>(d.size()) > max_det_all) d.resize(max_det_all);
            const std::size_t D = d.size(), G = g.size();
            ious.assign(D * G, 0.0);
            for (std::size_t a = 0; a < D; ++a)
                for (std::size_t b = 0; b < G; ++b)
                    ious[a * G + b] = bb_iou(&data.dt_box[4 * d[a]], &data.gt_box[4 * g[b]], data.gt_crowd[g[b]] != 0);
            credit.resize(G);  // pycocotools' dtMatches holds the ground truth's id and is tested for truth
            for (std::size_t b = 0; b < G; ++b) credit[b] = (p.zero_id_unmatched && data.gt_id[g[b]] == 0) ? 0 : 1;
            for (int ar = 0; ar < A; ++ar) {
                const double lo = p.area_rngs[ar][0], hi = p.area_rngs[ar][1];
                ImgEval& e = evals[static_cast<std::size_t>(i) * A + ar];
                e.present = true;
                // ground truths: ignored ones last (stable)
                gt_ig.resize(G);
                for (std::size_t b = 0; b < G; ++b) {
                    const double area = data.gt_area[g[b]];
                    gt_ig[b] = (data.gt_crowd[g[b]] || area < lo || area > hi) ? 1 : 0;
                }
                gsorted.resize(G);
                std::iota(gsorted.begin(), gsorted.end(), std::int64_t{0});
                std::stable_sort(gsorted.begin(), gsorted.end(),
                                 [&](std::int64_t a, std::int64_t b) { return gt_ig[a] < gt_ig[b]; });
                e.n_gt_not_ignored = std::count(gt_ig.begin(), gt_ig.end(), std::uint8_t{0});
                e.scores.resize(D);
                for (std::size_t a = 0; a < D; ++a) e.scores[a] = data.dt_score[d[a]];
                e.matched.assign(static_cast<std::size_t>(T) * D, 0);
                e.ignored.assign(static_cast<std::size_t>(T) * D, 0);
                if (G > 0 && D > 0) {
                    for (int t = 0; t < T; ++t) {
                        gtm.assign(G, 0);
                        for (std::size_t a = 0; a < D; ++a) {
                            double iou = std::min(p.iou_thrs[t], 1 - 1e-10);
                            std::int64_t m = -1;
                            for (std::size_t gi = 0; gi < G; ++gi) {
                                const std::int64_t b = gsorted[gi];
                                const bool crowd = data.gt_crowd[g[b]] != 0;
                                if (gtm[gi] && !crowd) continue;
                                if (m > -1 && gt_ig[gsorted[m]] == 0 && gt_ig[b] == 1) break;
                                const double v = ious[a * G + b];
                                if (v < iou) continue;
                                iou = v;
                                m = static_cast<std::int64_t>(gi);
                            }
                            if (m == -1) continue;
                            e.ignored[static_cast<std::size_t>(t) * D + a] = gt_ig[gsorted[m]];
                            e.matched[static_cast<std::size_t>(t) * D + a] = credit[gsorted[m]];
                            gtm[m] = 1;
                        }
                    }
                }
                // unmatched detections outside the area range are ignored
                for (std::size_t a = 0; a < D; ++a) {
                    const double* bx = &data.dt_box[4 * d[a]];
                    const double area = bx[2] * bx[3];
                    if (area < lo || area > hi)
                        for (int t = 0; t < T; ++t)
                            if (!e.matched[static_cast<std::size_t>(t) * D + a]) e.ignored[static_cast<std::size_t>(t) * D + a] = 1;
                }
            }
        }
        // accumulate
        struct Ref {
            double score;
            std::int64_t img;
            std::int64_t pos;
        };
        std::vector<Ref> refs;
        std::vector<double> pr, rc;
        for (int ar = 0; ar < A; ++ar) {
            for (int mi = 0; mi < M; ++mi) {
                const std::int64_t max_det = p.max_dets[mi];
                refs.clear();
                std::int64_t npig = 0;
                bool any = false;
                for (std::int64_t i = 0; i < I; ++i) {
                    const ImgEval& e = evals[static_cast<std::size_t>(i) * A + ar];
                    if (!e.present) continue;
                    any = true;
                    npig += e.n_gt_not_ignored;
                    const std::int64_t D = std::min<std::int64_t>(static_cast<std::int64_t>(e.scores.size()), max_det);
                    for (std::int64_t a = 0; a < D; ++a) refs.push_back({e.scores[a], i, a});
                }
                if (!any || npig == 0) continue;
                std::stable_sort(refs.begin(), refs.end(), [](const Ref& a, const Ref& b) { return a.score > b.score; });
                const std::size_t nd = refs.size();
                for (int t = 0; t < T; ++t) {
                    pr.resize(nd);
                    rc.resize(nd);
                    double tp = 0, fp = 0;
                    for (std::size_t j = 0; j < nd; ++j) {
                        const ImgEval& e = evals[static_cast<std::size_t>(refs[j].img) * A + ar];
                        const std::size_t D = e.scores.size();
                        const std::size_t at = static_cast<std::size_t>(t) * D + static_cast<std::size_t>(refs[j].pos);
                        const bool ig = e.ignored[at] != 0, mt = e.matched[at] != 0;
                        if (!ig) {
                            if (mt) tp += 1;
                            else fp += 1;
                        }
                        rc[j] = tp / static_cast<double>(npig);
                        pr[j] = tp / (fp + tp + std::numeric_limits<double>::epsilon());
                    }
                    const std::size_t rix = ((static_cast<std::size_t>(t) * K + k) * A + ar) * M + mi;
                    recall[rix] = nd ? rc[nd - 1] : 0.0;
                    for (std::size_t j = nd; j-- > 1;)
                        if (pr[j] > pr[j - 1]) pr[j - 1] = pr[j];
                    for (int r = 0; r < R; ++r) {
                        const std::size_t pi = static_cast<std::size_t>(
                            std::lower_bound(rc.begin(), rc.end(), p.rec_thrs[r]) - rc.begin());
                        const std::size_t pix = (((static_cast<std::size_t>(t) * R + r) * K + k) * A + ar) * M + mi;
                        if (pi >= nd) {
                            for (int r2 = r; r2 < R; ++r2)
                                precision[(((static_cast<std::size_t>(t) * R + r2) * K + k) * A + ar) * M + mi] = 0.0;
                            break;
                        }
                        precision[pix] = pr[pi];
                    }
                }
            }
        }
    });
}

}  // namespace pyimgcls::core
