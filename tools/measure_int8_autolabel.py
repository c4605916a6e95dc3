"""The auto-label head on int8 embeddings against fp32 embeddings, on Fashion-MNIST (issue 18).

Embeddings of the same Fashion-MNIST images through ``Classifier(precision="int8").embed`` (the
shipped int8 copy of the embedded model) and ``Classifier().embed`` (fp32); for each seed an
``AutoLabeler`` is fitted on 100 labels (``--per-class`` of each class, drawn from the first
``--pool`` train images exactly as ``tools/measure_autolabel.py`` draws them) and its accuracy
(every test image labelled, accepted or not) measured on the first ``--test`` test images, once
with each precision's embeddings. Target: int8 within 1 point of fp32.

    python tools/measure_int8_autolabel.py --cache /tmp/int8b-cache
    python tools/measure_int8_autolabel.py --cache /tmp/int8b-cache --fp32-cache /tmp/cluster-fm

Only the labelled train rows and the test rows are embedded in int8. ``--fp32-cache`` reuses fp32
embeddings made by ``tools/measure_autolabel.py`` (``{train,t10k}_emb.npy``, the first rows of each
split) after checking that its first rows equal a fresh fp32 embedding. Needs ``apt-get install -y
dataset-fashion-mnist``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from _helpers import fashion  # noqa: E402


def labelled_rows(yp: np.ndarray, seed: int, per_class: int) -> np.ndarray:
    """The labelled train rows of ``seed`` (the draw of ``tools/measure_autolabel.py``)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice(np.flatnonzero(yp == c), per_class, replace=False) for c in range(10)])


def embed(clf, images: np.ndarray, what: str) -> np.ndarray:
    t = time.perf_counter()
    e = clf.embed(list(images), batch_size=64)
    print(f"embedded {len(images)} {what} images with {clf.precision} in {time.perf_counter() - t:.0f} s", flush=True)
    if not np.isfinite(e).all():
        raise RuntimeError(f"{what}: {int((~np.isfinite(e).all(1)).sum())} images could not be embedded")
    return e


def cached(path: str, make, rows: np.ndarray | None = None) -> np.ndarray:
    """``np.load(path)`` when it is there (and, with ``rows``, was made for those rows), else ``make()`` saved."""
    rows_path = path.replace(".npy", ".rows.npy")
    if os.path.exists(path) and (rows is None or (os.path.exists(rows_path) and
                                                  np.array_equal(np.load(rows_path), rows))):
        return np.load(path)
    e = make()
    np.save(path, e)
    if rows is not None:
        np.save(rows_path, rows)
    return e


def fp32_from_cache(folder: str, split: str, rows: np.ndarray, clf, images: np.ndarray) -> np.ndarray | None:
    """The fp32 rows from a ``measure_autolabel.py`` cache, after checking its first 16 rows against a
    fresh embedding (a cache made with another model or preprocessing is refused)."""
    p = os.path.join(folder, f"{split}_emb.npy")
    if not os.path.exists(p):
        return None
    e = np.load(p, mmap_mode="r")
    if e.shape[0] <= rows.max():
        return None
    fresh = clf.embed(list(images[:16]), batch_size=16)
    err = float(np.abs(fresh - e[:16]).max() / np.abs(fresh).max())
    if err > 1e-4:
        raise RuntimeError(f"{p}: its first rows differ from a fresh fp32 embedding (relative {err:.2e}): "
                           f"a stale cache; drop --fp32-cache")
    return np.asarray(e[rows])


def head_accuracy(x_lab, y_lab, x_test, y_test, seed: int) -> tuple[float, float]:
    """(accuracy of all test labels, out-of-fold accuracy on the labels) of an AutoLabeler fitted on
    ``(x_lab, y_lab)``."""
    from pyimgcls import AutoLabeler

    al = AutoLabeler(seed=seed).fit((x_lab, [fashion.CLASSES[i] for i in y_lab]))
    r = al.label(x_test, truth=[fashion.CLASSES[i] for i in y_test])
    return float(r.measured["accuracy"]), float(al.oof_accuracy_)


def main() -> int:
    import pyimgcls

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", required=True, help="folder for the int8 (and fp32) embeddings")
    ap.add_argument("--fp32-cache", default=None, help="a tools/measure_autolabel.py cache to reuse for fp32")
    ap.add_argument("--test", type=int, default=10000, help="first N test images")
    ap.add_argument("--pool", type=int, default=10000, help="labels are drawn from the first N train images")
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if not fashion.available():
        print(fashion.SKIP_REASON, file=sys.stderr)
        return 2
    os.makedirs(args.cache, exist_ok=True)

    xp, yp = fashion.load("train", args.pool)
    xt, yt = fashion.load("t10k", args.test)
    lab = {s: labelled_rows(yp, s, args.per_class) for s in args.seeds}
    rows = np.unique(np.concatenate(list(lab.values())))
    pos = {r: i for i, r in enumerate(rows)}

    c32 = pyimgcls.Classifier(threads=args.threads)
    c8 = pyimgcls.Classifier(precision="int8", threads=args.threads)
    if c8.precision != "int8":
        print("this CPU has no VNNI: Classifier(precision='int8') runs fp32 here; nothing to compare", file=sys.stderr)
        return 2
    emb = {}
    # the cache files are named by the model file's hash: a regenerated int8 model is embedded afresh
    tag = {p: hashlib.sha256(open(pyimgcls.default_model_path(p), "rb").read()).hexdigest()[:12]
           for p in ("fp32", "int8")}
    for prec, clf in (("fp32", c32), ("int8", c8)):
        tr = te = None
        if prec == "fp32" and args.fp32_cache:
            tr = fp32_from_cache(args.fp32_cache, "train", rows, clf, xp)
            te = fp32_from_cache(args.fp32_cache, "t10k", np.arange(args.test), clf, xt)
        if tr is None:
            tr = cached(os.path.join(args.cache, f"{prec}_{tag[prec]}_train.npy"), lambda: embed(clf, xp[rows], "train"), rows)
        if te is None:
            te = cached(os.path.join(args.cache, f"{prec}_{tag[prec]}_t10k_{args.test}.npy"), lambda: embed(clf, xt, "test"))
        emb[prec] = (tr, te)

    # how far the int8 embeddings are from the fp32 ones (test images)
    a, b = emb["fp32"][1].astype(np.float64), emb["int8"][1].astype(np.float64)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    rel = np.linalg.norm(a - b, axis=1) / np.linalg.norm(a, axis=1)
    out = {"int8_model_sha256_12": tag["int8"], "test_images": int(args.test), "labels_per_class": args.per_class, "seeds": args.seeds,
           "embedding_cosine_median": float(np.median(cos)), "embedding_cosine_p01": float(np.quantile(cos, 0.01)),
           "embedding_rel_l2_median": float(np.median(rel)), "rows": []}
    print(f"int8 vs fp32 embeddings, {args.test} test images: cosine median {np.median(cos):.4f} "
          f"(1st percentile {np.quantile(cos, 0.01):.4f}), relative L2 error median {np.median(rel):.4f}")
    for s in args.seeds:
        idx = [pos[r] for r in lab[s]]
        r = {"seed": s}
        for prec in ("fp32", "int8"):
            tr, te = emb[prec]
            r[f"{prec}_accuracy"], r[f"{prec}_oof_accuracy"] = head_accuracy(tr[idx], yp[lab[s]], te, yt, s)
        r["diff_points"] = 100 * (r["int8_accuracy"] - r["fp32_accuracy"])
        out["rows"].append(r)
        print(f"seed {s}: accuracy fp32 {r['fp32_accuracy']:.4f}  int8 {r['int8_accuracy']:.4f}  "
              f"({r['diff_points']:+.2f} points)", flush=True)
    f32 = np.mean([r["fp32_accuracy"] for r in out["rows"]])
    i8 = np.mean([r["int8_accuracy"] for r in out["rows"]])
    worst = min(r["diff_points"] for r in out["rows"])
    out.update({"fp32_mean": float(f32), "int8_mean": float(i8), "mean_diff_points": float(100 * (i8 - f32)),
                "worst_seed_diff_points": float(worst), "within_1_point": bool(abs(100 * (i8 - f32)) <= 1.0)})
    print(f"mean accuracy fp32 {f32:.4f}, int8 {i8:.4f}: {100 * (i8 - f32):+.2f} points (worst seed {worst:+.2f}); "
          f"target within 1 point: {'met' if out['within_1_point'] else 'NOT met'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0 if out["within_1_point"] else 1


if __name__ == "__main__":
    sys.exit(main())
