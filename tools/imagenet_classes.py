"""Writes the ImageNet-1k class list of the embedded model: WordNet ids and unique names.

    pip download --no-deps -d /tmp/timm timm   # timm's wheel carries the synset files (Apache-2.0)
    python tools/imagenet_classes.py /tmp/timm/timm-*.whl            # prints the check
    python tools/imagenet_classes.py /tmp/timm/timm-*.whl --annotate pyimgcls/assets/efficientnet_lite0.onnx

The names are each synset's first WordNet lemma, as before, except where two synsets share it:
``crane`` (a bird and a machine) and ``maillot`` (two kinds of swimsuit) get a word in brackets,
so every name is unique and ``label_name`` identifies the class. ``--annotate`` stores the names
(``pyimgcls.labels``) and the WordNet ids (``pyimgcls.class_ids``) in the model's metadata; the
check requires that only those names change.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile

RENAME = {"n02012849": "crane (bird)", "n03126707": "crane (machine)",
          "n03710637": "maillot", "n03710721": "maillot (tank suit)"}


def classes(wheel: str) -> tuple[list[str], list[str]]:
    z = zipfile.ZipFile(wheel)
    wnids = z.read("timm/data/_info/imagenet_synsets.txt").decode().split()
    lemmas = dict(line.split("\t", 1) for line in z.read("timm/data/_info/imagenet_synset_to_lemma.txt").decode()
                  .splitlines() if line.strip())
    names = [RENAME.get(w, lemmas[w].split(",")[0].strip()) for w in wnids]
    if len(wnids) != 1000 or len(set(names)) != 1000:
        raise SystemExit(f"expected 1000 unique classes, got {len(wnids)} ids and {len(set(names))} names")
    return wnids, names


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wheel", help="a timm wheel (pip download --no-deps timm)")
    ap.add_argument("--annotate", default=None, help="ONNX model to store the ids and names in (in place)")
    args = ap.parse_args()
    wnids, names = classes(args.wheel)
    if args.annotate:
        import onnx

        m = onnx.load(args.annotate)
        props = {p.key: p.value for p in m.metadata_props}
        old = json.loads(props.get("pyimgcls.labels", "[]"))
        changed = [(i, a, b) for i, (a, b) in enumerate(zip(old, names)) if a != b]
        if len(old) != 1000 or {i for i, _, _ in changed} != {wnids.index(w) for w in RENAME if RENAME[w] != old[
                wnids.index(w)]}:
            raise SystemExit(f"unexpected label changes: {changed[:10]}")
        props["pyimgcls.labels"] = json.dumps(names)
        props["pyimgcls.class_ids"] = json.dumps(wnids)
        del m.metadata_props[:]
        for k, v in props.items():
            m.metadata_props.add(key=k, value=v)
        onnx.save(m, args.annotate)
        print(f"annotated {args.annotate}: {len(changed)} names changed: {changed}")
    else:
        print(f"{len(wnids)} classes, unique names; renamed: {RENAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
