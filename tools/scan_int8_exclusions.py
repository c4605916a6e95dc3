"""Finer choices of what the int8 copy of the embedded model keeps in float, and of its calibration:
held-out top-1 agreement of each, and model-only speed against fp32 in one interleaved run.

    python tools/scan_int8_exclusions.py --work /tmp/int8-scan                       # agreement of every variant
    python tools/scan_int8_exclusions.py --work /tmp/int8-scan --only blocks         # one family
    python tools/scan_int8_exclusions.py --work /tmp/int8-scan --speed shipped,all-int8,stem+b01 --rounds 8

The data are ``tools/make_int8_model.py``'s (the same seeded crops, calibration on one half of the
photos, evaluation on every crop of the other half). The float model's logits and the evaluation
batch are cached in ``--work``, and so are the calibration ranges of each calibration choice
(computed once with nothing excluded, reused for every exclusion: ``quantize(calibration_cache=)``)
and each variant's int8 file (for ``--speed``).

Families: ``blocks`` keeps one region in float at a time, everything else int8 (the sensitivity of
each block); ``regions`` widens the early float region node by node (stem, blocks 0-2, parts of
block 2, head, block 15); ``greedy`` adds one region at a time to block 0 (the cheapest region that
moves agreement); ``finer`` splits blocks 1, 2 and 15 into their Convs, with calibration choices;
``calibration`` tries the calibration choices (MinMax, MinMax of per-batch means, entropy,
percentile, more samples) on everything int8, on stem + blocks 0-1 and on stem + blocks 0-2 (the
recipe shipped before). The shipped recipe keeps ``only block 0 float`` and bias-corrects the rest
(``make_int8_model.AUTO_EXCLUDE`` / ``AUTO_BIAS_CORRECTION``; ``tools/try_int8_bias_correction.py``
measures a correction on any variant made here).
A single float Conv between int8 ones (``... project`` variants) runs differently in plain ONNX
Runtime, whose ``WeightBiasQuantization`` optimiser quantizes its weights (see README "int8").

``--speed`` measures the named variants and fp32 model-only at batch 8 (``session.run`` on 8
preprocessed held-out crops, all usable cores), in ``--rounds`` rounds of every model in turn, the
median round each, and prints the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

STEM = ["/_conv_stem/*", "/_swish/Clip"]
HEAD = ["/_conv_head/*", "/_swish_1/Clip"]


def block(k: int) -> list[str]:
    return [f"/_blocks.{k}/*"]


#: calibration choices: name -> (method, samples, extra quantize_static options)
CALIBRATIONS = {
    "minmax": ("minmax", 256, {}),
    # MinMax of the per-batch (8 images) minima / maxima averaged over all batches, instead of the
    # extremes (ONNX Runtime's CalibMovingAverage, all batches in one chunk so the mean is plain)
    "minmax-mean": ("minmax", 256, {"CalibMovingAverage": True, "CalibStridedMinMax": None}),
    "minmax-512": ("minmax", 512, {}),
    "entropy": ("entropy", 256, {}),
    "percentile-99.99": ("percentile", 256, {"CalibPercentile": 99.99}),
    "percentile-99.999": ("percentile", 256, {}),
}


def variants() -> dict[str, dict]:
    """name -> {"family", "exclude" (patterns), "calibration" (a CALIBRATIONS key)}."""
    v: dict[str, dict] = {}

    def add(family, name, exclude, calibration="minmax"):
        v[name] = {"family": family, "exclude": exclude, "calibration": calibration}

    add("blocks", "all-int8", [])
    add("blocks", "only stem float", STEM)
    for k in range(16):
        add("blocks", f"only block {k} float", block(k))
    add("blocks", "only head float", HEAD)
    b01 = STEM + ["/_blocks.[0-1]/*"]
    b2_expand_dw = ["/_blocks.2/_expand_conv/Conv", "/_blocks.2/_swish/Clip", "/_blocks.2/_depthwise_conv/Conv",
                    "/_blocks.2/_swish_1/Clip"]
    add("regions", "stem+b01", b01)
    add("regions", "stem+b0-2", STEM + ["/_blocks.[0-2]/*"])
    add("regions", "stem+b0", STEM + block(0))
    add("regions", "b0-1 (stem int8)", ["/_blocks.[0-1]/*"])
    add("regions", "stem+b01+b2 expand", b01 + ["/_blocks.2/_expand_conv/Conv", "/_blocks.2/_swish/Clip"])
    add("regions", "stem+b01+b2 expand+dw", b01 + b2_expand_dw)
    add("regions", "stem+b01+b2 add", b01 + ["/_blocks.2/Add"])
    add("regions", "b0-2 (stem int8)", ["/_blocks.[0-2]/*"])
    add("regions", "b0-1+b2 expand+dw", ["/_blocks.[0-1]/*"] + b2_expand_dw)
    add("regions", "b0-1+b2 dw", ["/_blocks.[0-1]/*", "/_blocks.2/_depthwise_conv/Conv", "/_blocks.2/_swish_1/Clip"])
    add("regions", "b1+b2 expand+dw", block(1) + b2_expand_dw)
    b0_dw = ["/_blocks.0/_depthwise_conv/Conv", "/_blocks.0/_swish/Clip"]
    add("regions", "only b0 dw float", b0_dw)
    add("regions", "only b0 project float", ["/_blocks.0/_project_conv/Conv"])
    add("regions", "b0+b2 expand+dw", block(0) + b2_expand_dw)
    add("regions", "b0+b1 dw", block(0) + ["/_blocks.1/_depthwise_conv/Conv", "/_blocks.1/_swish_1/Clip"])
    add("regions", "b0+b1 expand+dw", block(0) + ["/_blocks.1/_expand_conv/Conv", "/_blocks.1/_swish/Clip",
                                                  "/_blocks.1/_depthwise_conv/Conv", "/_blocks.1/_swish_1/Clip"])
    add("regions", "stem+b01+head", b01 + HEAD)
    add("regions", "stem+b01+b15", b01 + block(15))
    # block 0 kept in float costs little speed: what else to add to it, one region at a time
    add("greedy", "b0+stem", block(0) + STEM)
    for k in range(1, 16):
        add("greedy", f"b0+b{k}", block(0) + block(k))
    add("greedy", "b0+head", block(0) + HEAD)
    add("greedy", "b0+b1 project", block(0) + ["/_blocks.1/_project_conv/Conv"])
    # block 1's depthwise output (56x56x96 after ReLU6) is the activation that int8 hurts most
    b1_dw_project = ["/_blocks.1/_depthwise_conv/Conv", "/_blocks.1/_swish_1/Clip", "/_blocks.1/_project_conv/Conv"]
    for cal in ("minmax", "minmax-mean", "entropy"):
        sfx = "" if cal == "minmax" else f" {cal}"
        add("finer", "b0+b1 dw+project" + sfx, block(0) + b1_dw_project, cal)
        add("finer", "b0-1" + sfx, ["/_blocks.[0-1]/*"], cal)
    for cal in ("minmax", "minmax-mean"):
        sfx = "" if cal == "minmax" else f" {cal}"
        add("finer", "b0-1+b2 expand+dw" + sfx, ["/_blocks.[0-1]/*"] + b2_expand_dw, cal)
        add("finer", "b0-1+b15" + sfx, ["/_blocks.[0-1]/*"] + block(15), cal)
    add("finer", "stem+b01+b2 expand+dw minmax-mean", b01 + b2_expand_dw, "minmax-mean")
    # parts of block 15 (the last MBConv: 7x7, 1152 channels) on top of stem + blocks 0-1
    b15_expand_dw = ["/_blocks.15/_expand_conv/Conv", "/_blocks.15/_swish/Clip", "/_blocks.15/_depthwise_conv/Conv",
                     "/_blocks.15/_swish_1/Clip"]
    add("finer", "stem+b01+b15 expand+dw", b01 + b15_expand_dw)
    add("finer", "stem+b01+b15 dw+project", b01 + b15_expand_dw[2:] + ["/_blocks.15/_project_conv/Conv"])
    add("finer", "stem+b01+b15 project", b01 + ["/_blocks.15/_project_conv/Conv"])
    add("finer", "stem+b01+b2 dw", b01 + b2_expand_dw[2:])
    for cal in CALIBRATIONS:
        if cal != "minmax":
            add("calibration", f"all-int8 {cal}", [], cal)
            add("calibration", f"stem+b01 {cal}", b01, cal)
            add("calibration", f"stem+b0-2 {cal}", STEM + ["/_blocks.[0-2]/*"], cal)
    return v


def slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "+-." else "_" for c in name)


def load_eval(work: str, crops: int, seed: int, eval_seed: int | None = None):
    """(calibration JPEGs, evaluation batch, fp32 logits), the last two cached in ``work``.
    ``eval_seed``: other crops of the same evaluation photos, drawn with this seed (a second
    held-out set, to see how much of a difference between variants is the draw of the crops)."""
    import pyimgcls
    from make_int8_model import crops as make_crops
    from make_int8_model import dataset, photos
    from pyimgcls.jobs.quantize import _run_all, load_images
    from pyimgcls.runtime.session import Session

    cal, ev, _, ev_names = dataset(crops, seed)
    tag = f"{crops}_{seed}" + (f"_ev{eval_seed}" if eval_seed is not None else "")
    px, pl = os.path.join(work, f"ev_{tag}.npy"), os.path.join(work, f"ev_{tag}_fp32.npy")
    if not os.path.exists(pl):
        if eval_seed is not None:
            rng, ph = np.random.default_rng(eval_seed), photos()
            ev = [c for nm in ev_names for c in make_crops(ph[nm], crops, rng)]
        fp32 = Session(pyimgcls.default_model_path(), providers=["CPUExecutionProvider"])
        x, _, _ = load_images(ev, fp32.preprocess_config)
        np.save(px, x)
        np.save(pl, _run_all(fp32, x))
    return cal, np.load(px), np.load(pl)


def make(name: str, spec: dict, cal, work: str, seed: int) -> str:
    import pyimgcls
    from pyimgcls.jobs.quantize import quantize

    path = os.path.join(work, slug(name) + ".onnx")
    if os.path.exists(path):
        return path
    method, samples, extra = CALIBRATIONS[spec["calibration"]]
    cache = os.path.join(work, f"ranges_{spec['calibration']}_{seed}.json")
    quantize(pyimgcls.default_model_path(), cal, path, method=method, samples=samples, seed=seed,
             nodes_to_exclude=spec["exclude"], throughput_batch=None, calibration_cache=cache,
             extra_options=extra)
    return path


def agreement_rows(names, work, crops, seed, threads, eval_seed=None):
    from pyimgcls.jobs.quantize import _run_all, compare_outputs
    from pyimgcls.runtime.session import Session

    cal, x, ref = load_eval(work, crops, seed, eval_seed)
    allv = variants()
    done_path = os.path.join(work, "agreement.json" if eval_seed is None else f"agreement_ev{eval_seed}.json")
    done = json.load(open(done_path)) if os.path.exists(done_path) else {}
    for name in names:
        if name in done:
            r = done[name]
        else:
            t = time.perf_counter()
            path = make(name, allv[name], cal, work, seed)
            s = Session(path, providers=["CPUExecutionProvider"], threads=threads)
            a = compare_outputs(ref, _run_all(s, x))
            r = {"family": allv[name]["family"], "calibration": allv[name]["calibration"],
                 "exclude": allv[name]["exclude"], "nodes_float": len(s.quantization["nodes_to_exclude"]),
                 "images": a.images, "top1": a.top1_agreement, "confident": a.confident_agreement,
                 "confident_images": a.confident_images, "top5": a.top5_containment,
                 "mean_abs_prob_diff": a.mean_abs_prob_diff, "seconds": time.perf_counter() - t}
            done[name] = r
            with open(done_path, "w") as f:
                json.dump(done, f, indent=1)
        print(f"{name:<34} float nodes {r['nodes_float']:>2}  top-1 {r['top1']:.2%}  confident {r['confident']:.2%} "
              f"of {r['confident_images']}  top-5 {r['top5']:.2%}  mean |dp| {r['mean_abs_prob_diff']:.4f}", flush=True)
    return done


def speed(names, work, crops, seed, rounds, threads, budget):
    """Model-only speed of fp32 and each variant at batch 8, rounds alternating: the median round's
    images per second (wall clock) and CPU seconds per image (``time.process_time``: less moved by
    other processes taking the cores than the wall clock, a check on it)."""
    import pyimgcls
    from pyimgcls.runtime.session import Session

    cal, x, _ = load_eval(work, crops, seed)
    allv = variants()
    paths = {"fp32": pyimgcls.default_model_path()}
    for n in names:
        paths[n] = pyimgcls.default_model_path("int8") if n == "asset" else make(n, allv[n], cal, work, seed)
    sess = [Session(p, providers=["CPUExecutionProvider"], threads=threads) for p in paths.values()]
    xb = np.ascontiguousarray(x[:8])
    for s in sess:  # warm-up
        s.run(xb)
        s.run(xb)
    load0 = os.getloadavg()
    wall = [[] for _ in sess]
    cpu = [[] for _ in sess]
    for _ in range(rounds):
        for k, s in enumerate(sess):
            n, t0, c0 = 0, time.perf_counter(), time.process_time()
            while n < 2 or time.perf_counter() - t0 < budget:
                s.run(xb)
                n += 1
            wall[k].append(n * len(xb) / (time.perf_counter() - t0))
            cpu[k].append((time.process_time() - c0) / (n * len(xb)))
    load1 = os.getloadavg()
    ips = [float(np.median(w)) for w in wall]
    cps = [float(np.median(c)) for c in cpu]
    print(f"model only, batch 8, {sess[0].threads} threads, {rounds} rounds alternating, load average "
          f"{load0[0]:.1f} before, {load1[0]:.1f} after")
    out = {}
    for n, v, c in zip(paths, ips, cps):
        out[n] = {"img_s": v, "vs_fp32": v / ips[0], "cpu_ms_per_img": 1000 * c, "cpu_vs_fp32": cps[0] / c}
        print(f"{n:<34} {v:7.1f} img/s  {v / ips[0]:.2f}x fp32   CPU {1000 * c:6.2f} ms/img  {cps[0] / c:.2f}x fp32")
    return {"load_before": load0, "load_after": load1, "rounds": rounds, "speeds": out}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True)
    ap.add_argument("--crops", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=None, help="a family (blocks, regions, greedy, finer, calibration) or comma-separated "
                                                 "names")
    ap.add_argument("--eval-seed", type=int, default=None, help="evaluate on other crops of the evaluation photos")
    ap.add_argument("--speed", default=None, help="comma-separated variant names ('asset': the shipped file)")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--round-seconds", type=float, default=0.5, help="seconds per model per round")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    allv = variants()
    if args.speed:
        names = [n for n in args.speed.split(",") if n]
        bad = [n for n in names if n not in allv and n != "asset"]
        if bad:
            raise SystemExit(f"unknown variants {bad}; known: {', '.join(allv)}")
        res = speed(names, args.work, args.crops, args.seed, args.rounds, args.threads, args.round_seconds)
    else:
        if args.only in ("blocks", "regions", "calibration", "greedy", "finer"):
            names = [n for n, v in allv.items() if v["family"] == args.only]
        elif args.only:
            names = [n for n in args.only.split(",") if n]
        else:
            names = list(allv)
        res = agreement_rows(names, args.work, args.crops, args.seed, args.threads, args.eval_seed)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
