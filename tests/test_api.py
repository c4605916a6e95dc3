"""The public API: every name the README and ``__all__`` promise imports from the same public place,
the layers import only downwards, and ``python -m pyimgcls`` is the ``pyimgcls`` command."""

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import pyimgcls

# Names users import, as the README and the 0.1 API spell them: (module, name).
PUBLIC = [
    ("pyimgcls", n) for n in (
        "Classification", "Classifier", "ModelInfo", "Session", "annotate_model", "default_model_path", "Detections",
        "DetectionResult", "Detector", "metrics", "ops", "ImageDecodeError", "ImageTransform", "PreprocessConfig",
        "Transforms", "image_size",
        "preprocess", "read_image", "ScoreSummary", "score", "__version__", "FaceDetector", "EvalReport", "evaluate", "QuantizeReport", "quantize", "AutoLabeler", "AutoLabelResult", "ReviewQueue",
        "Clustering", "cluster")
] + [
    ("pyimgcls.ops", n) for n in ("nms", "batched_nms", "soft_nms", "box_iou", "box_convert", "decode_yolo", "crop_resize")
] + [
    ("pyimgcls.metrics", n) for n in (
        "COCOEvaluator", "COCOResult", "ClassificationReport", "ConfusionMatrix", "MultilabelReport", "STAT_NAMES",
        "UndefinedMetricWarning", "average_precision", "evaluate_coco", "precision_recall_curve", "roc_auc",
        "threshold_for_precision", "top_k_accuracy", "voc_average_precision")
]


@pytest.mark.parametrize("module, name", PUBLIC)
def test_public_name_imports_from_its_public_place(module, name):
    mod = __import__(module, fromlist=[name])
    assert hasattr(mod, name), f"{module}.{name}"


def test_all_lists_exactly_what_exists():
    for mod in (pyimgcls, pyimgcls.ops, pyimgcls.metrics):
        assert len(set(mod.__all__)) == len(mod.__all__), mod.__name__
        for name in mod.__all__:
            assert hasattr(mod, name), f"{mod.__name__}.{name}"
    assert {n for m, n in PUBLIC if m == "pyimgcls"} - {"__version__"} == set(pyimgcls.__all__)


def test_public_names_are_the_right_kinds():
    assert inspect.isfunction(pyimgcls.preprocess)  # the function, not the preprocessing package
    assert inspect.isfunction(pyimgcls.score)
    assert inspect.ismodule(pyimgcls.ops) and inspect.ismodule(pyimgcls.metrics)
    assert inspect.isclass(pyimgcls.Classifier) and inspect.isclass(pyimgcls.Detections)
    assert pyimgcls.ops.Detections is pyimgcls.Detections


def test_readme_python_names_exist():
    """Every ``pyimgcls.X`` / ``pyimgcls.ops.X`` / ``metrics.X`` the README's Python blocks use exists."""
    readme = Path(__file__).resolve().parents[1] / "README.md"
    if not readme.exists():
        pytest.skip("README.md not beside the tests")
    import re

    text = readme.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    used = set()
    for b in blocks:
        used |= {("pyimgcls", n) for n in re.findall(r"\bpyimgcls\.([A-Za-z_]\w*)", b)}
        used |= {("pyimgcls.ops", n) for n in re.findall(r"\bpyimgcls\.ops\.([A-Za-z_]\w*)", b)}
        used |= {("pyimgcls.metrics", n) for n in re.findall(r"\bmetrics\.([A-Za-z_]\w*)", b)}
    assert used
    for module, name in sorted(used):
        mod = __import__(module, fromlist=[name])
        assert hasattr(mod, name), f"README uses {module}.{name}"


# The layers, bottom first; a module may import its own layer and the layers below it.
LAYERS = [
    {"_core", "limits", "io", "runtime.threads"},
    {"preprocessing", "ops", "metrics"},
    {"runtime"},
    {"tasks"},
    {"jobs", "integrations"},
    {"cli", "__main__"},
]


def _layer(qualname: str) -> int:
    parts = qualname.split(".")
    for i, layer in enumerate(LAYERS):
        if ".".join(parts[:2]) in layer:
            return i
    for i, layer in enumerate(LAYERS):
        if parts[0] in layer:
            return i
    raise KeyError(qualname)


def _package_modules():
    root = Path(pyimgcls.__file__).parent
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            yield ".".join(parts), path


def _imports(qualname: str, path: Path):
    """pyimgcls-internal modules that ``path`` imports (module level and inside functions)."""
    tree = ast.parse(path.read_text())
    pkg = qualname.split(".") if path.name == "__init__.py" else qualname.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else list(pkg)
                mod = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:
                    for a in node.names:
                        yield ".".join(base + [a.name])
                    continue
                yield mod
            elif node.module and node.module.startswith("pyimgcls."):
                yield node.module[len("pyimgcls."):]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("pyimgcls."):
                    yield a.name[len("pyimgcls."):]


def test_imports_run_one_way():
    bad = []
    for qualname, path in _package_modules():
        if "." not in qualname and path.name == "__init__.py":
            continue
        if qualname in ("__init__",):
            continue
        mine = _layer(qualname)
        for target in _imports(qualname, path):
            if not target or target == "__version__":  # the package's version string, not a module
                continue
            if _layer(target) > mine:
                bad.append(f"{qualname} imports {target}")
    assert not bad, "imports that reach up a layer:\n" + "\n".join(bad)


def test_no_module_reads_another_modules_private_attributes():
    bad = []
    for qualname, path in _package_modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level and node.module:
                for a in node.names:
                    # a private name from another package's module (a package's own _modules are fine)
                    if a.name.startswith("_") and a.name != "_core" and not node.module.startswith("_") \
                            and node.level > 1:
                        bad.append(f"{qualname}: from {'.' * node.level}{node.module} import {a.name}")
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
                if node.value.attr == "session" and node.attr.startswith("_"):
                    bad.append(f"{qualname}: .session.{node.attr}")
    assert not bad, "\n".join(bad)


def test_python_dash_m_is_the_command(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pyimgcls", "--help"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    for cmd in ("classify", "score", "bench", "info", "eval"):
        assert cmd in r.stdout


def test_unbuilt_source_tree_says_how_to_build(tmp_path):
    """The package sources without the native module (a plain source checkout) fail with a message
    that says what to do, not with a circular-import error."""
    import shutil

    src = Path(pyimgcls.__file__).parent
    shutil.copytree(src, tmp_path / "pyimgcls", ignore=shutil.ignore_patterns("_core*.so", "_core*.pyd", "*.onnx"))
    # -S: no site-packages, so neither an installed pyimgcls nor an editable-install hook can answer
    r = subprocess.run([sys.executable, "-S", "-c", "import pyimgcls"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=60)
    assert r.returncode != 0
    assert "pyimgcls is not built here" in r.stderr and "pip install ." in r.stderr, r.stderr
    assert "circular" not in r.stderr
