"""The committed type stub of the private native module equals a fresh pybind11-stubgen run."""

import ast
import difflib
import os
import subprocess
import sys

import pyimgcls
from pyimgcls import _core


def _fresh_stub(tmp_path) -> str:
    subprocess.run([sys.executable, "-m", "pybind11_stubgen", "pyimgcls._core", "-o", str(tmp_path)], check=True,
                   cwd=tmp_path, capture_output=True, timeout=300)
    return (tmp_path / "pyimgcls" / "_core.pyi").read_text(encoding="utf-8")


def _committed_stub() -> str:
    with open(os.path.join(os.path.dirname(pyimgcls.__file__), "_core.pyi"), encoding="utf-8") as f:
        return f.read()


def test_committed_stub_equals_a_fresh_one(tmp_path):
    fresh, committed = _fresh_stub(tmp_path), _committed_stub()
    diff = "".join(difflib.unified_diff(committed.splitlines(True), fresh.splitlines(True), "committed", "fresh", n=1))
    assert fresh == committed, f"pyimgcls/_core.pyi is stale: run python tools/gen_stub.py\n{diff[:4000]}"


def test_stub_lists_exactly_the_native_functions():
    tree = ast.parse(_committed_stub())
    stub = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    native = {n for n in dir(_core) if not n.startswith("_")}
    assert stub == native
