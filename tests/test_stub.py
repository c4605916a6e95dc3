import ast
import inspect
import os

import pyimgcls
from pyimgcls import _core


def test_stub_lists_exactly_the_native_functions():
    path = os.path.join(os.path.dirname(pyimgcls.__file__), "_core.pyi")
    tree = ast.parse(open(path).read())
    stub = {n.name: [a.arg for a in n.args.args] for n in tree.body if isinstance(n, ast.FunctionDef)}
    native = {n for n in dir(_core) if not n.startswith("_")}
    assert set(stub) == native
    for name, args in stub.items():
        doc = getattr(_core, name).__doc__ or ""
        for a in args:  # pybind11 signatures in the docstring name every argument
            assert f"{a}:" in doc, (name, a)


def test_public_api_is_importable():
    for name in pyimgcls.__all__:
        assert hasattr(pyimgcls, name), name
    assert inspect.isfunction(pyimgcls.preprocess) and inspect.ismodule(pyimgcls.ops)
