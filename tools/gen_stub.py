"""Regenerates pyimgcls/_core.pyi, the type stub of the private native module, from the built module.

    pip install ".[test]"          # builds _core with the pinned pybind11, installs the pinned pybind11-stubgen
    python tools/gen_stub.py       # writes pyimgcls/_core.pyi
    python tools/gen_stub.py --check

tests/test_stub.py fails when the committed stub differs from a fresh one; both sides use the
versions pinned in pyproject.toml (pybind11 in build-system.requires, pybind11-stubgen in the
test extra), since each version words the signatures a little differently.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fresh_stub() -> str:
    with tempfile.TemporaryDirectory() as d:
        # run outside the checkout so that the installed (built) pyimgcls is the one imported
        subprocess.run([sys.executable, "-m", "pybind11_stubgen", "pyimgcls._core", "-o", d], check=True, cwd=d,
                       stdout=subprocess.DEVNULL)
        with open(os.path.join(d, "pyimgcls", "_core.pyi"), encoding="utf-8") as f:
            return f.read()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the committed stub differs")
    args = ap.parse_args()
    path = os.path.join(ROOT, "pyimgcls", "_core.pyi")
    new = fresh_stub()
    if args.check:
        with open(path, encoding="utf-8") as f:
            same = f.read() == new
        print("stub up to date" if same else f"{path} differs from a fresh stub: run python tools/gen_stub.py")
        return 0 if same else 1
    with open(path, "w", encoding="utf-8") as f:
        f.write(new)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
