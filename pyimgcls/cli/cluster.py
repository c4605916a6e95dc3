"""``pyimgcls cluster``: group images by their embeddings (K-Means, BIRCH, agglomerative)."""

from __future__ import annotations

import argparse
import os
import sys

from ._args import HelpFormatter, UsageError, add_model_options, make_classifier, positive_int

__all__ = ["register", "run"]


def k_arg(s: str):
    if s == "auto":
        return "auto"
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer or auto, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer or auto, got {s}")
    return v


def register(sub: argparse._SubParsersAction, parents: list) -> None:
    s = sub.add_parser("cluster", parents=parents, formatter_class=HelpFormatter,
                       help="cluster images by their embeddings (kmeans, birch, agglomerative)",
                       description="Cluster images (embedded with the model, cached beside --out) or an embeddings "
                                   "file (.npy, or a `score --embeddings` output). Prints cluster sizes, the "
                                   "silhouette curve with --k auto, and quality figures with --labels.")
    s.add_argument("data", nargs="+", metavar="DATA",
                   help="image folders / files / @LIST files, or one embeddings file")
    s.add_argument("--method", choices=["kmeans", "birch", "agglomerative"], default="kmeans")
    s.add_argument("--k", type=k_arg, default=10, help="number of clusters, or auto (best silhouette on a sample)")
    s.add_argument("--k-range", default="2,20", help="with --k auto: the smallest and largest k tried, as LO,HI")
    s.add_argument("--pca", type=positive_int, default=None, help="project the normalised embeddings to this many "
                                                                  "dimensions first (faster)")
    s.add_argument("--linkage", choices=["ward", "average", "complete", "single"], default="ward",
                   help="agglomerative only (average / complete / single use cosine distance)")
    s.add_argument("--out", default=None, help="one row per image: path, cluster, distance (.csv, .jsonl, .parquet)")
    s.add_argument("--sheets", default=None, metavar="DIR", help="one contact-sheet PNG per cluster and index.html")
    s.add_argument("--labels", default=None, metavar="FILE",
                   help="known labels (CSV / Parquet: path,label): ARI, NMI, homogeneity, completeness, purity")
    s.add_argument("--cache", default=None, metavar="DIR",
                   help="embedding cache folder (default: OUT.embcache beside --out, or DIR/embcache of --sheets)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--max-memory-gib", type=float, default=4.0,
                   help="memory the agglomerative distance matrix may take")
    add_model_options(s)
    s.add_argument("--batch-size", type=positive_int, default=32, help="images per model call")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..jobs._embeddings import is_embeddings_file
    from ..jobs.cluster import cluster

    for d in args.data:
        if not d.startswith("@") and not os.path.exists(d):
            raise UsageError(f"no such file or folder: {d}")
    try:
        lo, hi = (int(v) for v in args.k_range.split(","))
    except ValueError:
        raise UsageError(f"--k-range must be LO,HI, got {args.k_range!r}") from None
    data = args.data[0] if len(args.data) == 1 else list(args.data)
    emb_file = len(args.data) == 1 and is_embeddings_file(args.data[0])
    cache = args.cache
    if cache is None and args.out is None and args.sheets is not None:
        cache = os.path.join(args.sheets, "embcache")
    clf = None if emb_file else make_classifier(args)
    try:
        res = cluster(data, method=args.method, k=args.k, pca=args.pca, linkage=args.linkage, labels=args.labels,
                      out=args.out, sheets=args.sheets, classifier=clf, cache=cache, seed=args.seed,
                      k_range=(lo, hi), max_memory=int(args.max_memory_gib * (1 << 30)), batch_size=args.batch_size)
    except MemoryError as e:
        raise UsageError(str(e)) from None
    if not args.quiet:
        print(res.summary())
        if args.out:
            print(f"-> {args.out}", file=sys.stderr)
        if args.sheets:
            print(f"-> {os.path.join(args.sheets, 'index.html')}", file=sys.stderr)
    return 1 if res.errors else 0
