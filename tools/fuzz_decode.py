"""Mutation fuzzing of ``pyimgcls.read_image`` on real photos in JPEG, PNG, WebP, TIFF and BMP.

    python tools/fuzz_decode.py --mutants 60            # the short run CI does (tests/io)
    python tools/fuzz_decode.py --mutants 20000 --seed 7 --timeout 10   # a long run for maintainers

Each mutant (bit flips, byte runs, truncation, duplicated or deleted spans, header fields set to
extremes) is decoded in a worker subprocess under a memory limit (``--memory-mb``) and a time
limit per file (``--timeout``): the worker reports each file before and after decoding, so a
crash or a hang is pinned on one mutant, which is saved under ``--keep`` for reproduction. A
mutant must decode or raise ``ImageDecodeError``; anything else (another exception, a crash, a
hang, running out of memory) is a failure. Exit status 1 when any mutant failed.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import select
import subprocess
import sys
import tempfile
import time

WORKER = r"""
import os, resource, sys, warnings
warnings.simplefilter("ignore")
limit = int(sys.argv[3]) << 20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from pyimgcls import ImageDecodeError, read_image
folder, start = sys.argv[1], int(sys.argv[2])
names = sorted(os.listdir(folder))
for i in range(start, len(names)):
    print("start", i, flush=True)
    with open(os.path.join(folder, names[i]), "rb") as f:
        data = f.read()
    try:
        for color in ("rgb", "unchanged"):
            read_image(data, color=color, min_size=(64, 64) if i % 2 else None)
        print("ok", i, flush=True)
    except ImageDecodeError:
        print("ok", i, flush=True)
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        print("bad", i, type(e).__module__ + "." + type(e).__name__, str(e).replace("\n", " ")[:300], flush=True)
print("done", flush=True)
"""


def seeds() -> dict[str, bytes]:
    import cv2
    import numpy as np
    from PIL import Image
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut()[::4, ::4])
    out = {}
    for fmt, kw in (("JPEG", {"quality": 85}), ("JPEG", {"quality": 85, "progressive": True}), ("PNG", {}),
                    ("WEBP", {"quality": 80}), ("TIFF", {}), ("BMP", {})):
        buf = io.BytesIO()
        Image.fromarray(photo).save(buf, format=fmt, **kw)
        out[f"{fmt.lower()}{'-p' if kw.get('progressive') else ''}"] = buf.getvalue()
    # the native PNG decoder's cases: gray, gray + alpha, RGBA (the RGB one is above)
    for mode, name in (("L", "png-gray"), ("LA", "png-la"), ("RGBA", "png-rgba")):
        buf = io.BytesIO()
        Image.fromarray(photo).convert(mode).resize((28, 28)).save(buf, format="PNG")
        out[name] = buf.getvalue()
    out["png16"] = cv2.imencode(".png", (photo.astype(np.uint16) * 257))[1].tobytes()
    out["tiff-gray16"] = cv2.imencode(".tiff", (photo[:, :, 0].astype(np.uint16) * 257))[1].tobytes()
    # RGBA with unassociated alpha (Pillow writes ExtraSamples 2): read_image's Pillow path
    buf = io.BytesIO()
    Image.fromarray(photo).convert("RGBA").resize((28, 28)).save(buf, format="TIFF")
    out["tiff-rgba"] = buf.getvalue()
    return out


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3, 8))):
        op = rng.randrange(7)
        n = len(b)
        if n < 4:
            break
        head = min(n, 512)  # headers live at the start: aim there more often
        pos = rng.randrange(head) if rng.random() < 0.6 else rng.randrange(n)
        if op == 0:
            b[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[pos] = rng.choice((0x00, 0xFF, 0x7F, 0x80, 0x01))
        elif op == 2:
            b[pos:pos + 4] = rng.choice((b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff",
                                         b"\x00\x01\x00\x00", b"\xff\xda\x00\x02"))
        elif op == 3:
            del b[rng.randrange(n // 2, n):]
        elif op == 4:
            a = rng.randrange(n)
            c = min(n, a + rng.randrange(1, 256))
            b[a:a] = b[a:c] * rng.randrange(1, 4)
        elif op == 5:
            a = rng.randrange(n)
            del b[a:a + rng.randrange(1, 64)]
        else:
            b[pos:pos + 2] = rng.randrange(65536).to_bytes(2, rng.choice(("big", "little")))
    return bytes(b)


def run(folder: str, count: int, timeout: float, memory_mb: int) -> list[tuple[int, str]]:
    failures: list[tuple[int, str]] = []
    start = 0
    while start < count:
        err = tempfile.TemporaryFile()
        proc = subprocess.Popen([sys.executable, "-c", WORKER, folder, str(start), str(memory_mb)],
                                stdout=subprocess.PIPE, stderr=err, cwd=folder)
        fd = proc.stdout.fileno()
        current, pending = start, b""
        deadline = time.monotonic() + max(timeout, 60)  # the first line waits for the import too
        finished = False
        while not finished:
            if b"\n" not in pending:
                ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    proc.kill()
                    proc.wait()
                    failures.append((current, f"hang: more than {timeout:g} s"))
                    break
                chunk = os.read(fd, 65536)
                if not chunk:  # the worker died
                    proc.wait()
                    err.seek(0)
                    last = err.read().decode("utf-8", "replace").strip().splitlines()[-1:]
                    failures.append((current, f"crash: exit status {proc.returncode} {last}"))
                    break
                pending += chunk
                continue
            line, pending = pending.split(b"\n", 1)
            parts = line.decode("utf-8", "replace").split(" ", 3)
            if parts[0] == "start":
                current = int(parts[1])
                deadline = time.monotonic() + timeout
            elif parts[0] == "bad":
                failures.append((int(parts[1]), f"{parts[2]}: {parts[3].strip() if len(parts) > 3 else ''}"))
            elif parts[0] == "done":
                proc.wait()
                finished = True
        proc.stdout.close()
        err.close()
        if finished:
            break
        start = current + 1
    return failures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mutants", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per file")
    ap.add_argument("--memory-mb", type=int, default=3072, help="address-space limit of the worker")
    ap.add_argument("--keep", default=None, help="folder to copy failing mutants into")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    base = seeds()
    names = sorted(base)
    with tempfile.TemporaryDirectory() as d:
        for i in range(args.mutants):
            kind = names[i % len(names)]
            with open(os.path.join(d, f"m{i:06d}-{kind}.bin"), "wb") as f:
                f.write(mutate(base[kind], rng))
        t0 = time.monotonic()
        failures = run(d, args.mutants, args.timeout, args.memory_mb)
        files = sorted(os.listdir(d))
        for i, why in failures:
            print(f"FAIL {files[i]}: {why}")
            if args.keep:
                os.makedirs(args.keep, exist_ok=True)
                with open(os.path.join(d, files[i]), "rb") as src, open(os.path.join(args.keep, files[i]), "wb") as dst:
                    dst.write(src.read())
        print(f"{args.mutants} mutants of {len(names)} seed files, {len(failures)} failures, "
              f"{time.monotonic() - t0:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
