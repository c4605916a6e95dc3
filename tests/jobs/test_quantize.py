"""``pyimgcls quantize`` / ``Classifier(precision="int8")``: the shipped int8 model keeps the float
model's answers on real photos; quantization of a model, its metadata and report; bad input."""

import json
import pickle
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import pyimgcls
from _helpers.models import tiny_classifier
from pyimgcls import Classifier, PreprocessConfig, Session
from pyimgcls.cli.main import main as cli_main
from pyimgcls.jobs.bench import run_bench
from pyimgcls.jobs.quantize import MIN_CALIBRATION_IMAGES, compare_outputs, quantize
from pyimgcls.runtime import cpu

CFG = PreprocessConfig(size=(32, 32), resize="stretch", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def _crops(photos, n, seed=0, size=48):
    """``n`` random crops (RGB uint8, at least ``size`` px) of the real photos."""
    rng = np.random.default_rng(seed)
    imgs = list(photos.values())
    out = []
    for i in range(n):
        im = imgs[i % len(imgs)]
        h, w = im.shape[:2]
        ch, cw = int(rng.integers(size, h)), int(rng.integers(size, w))
        y, x = int(rng.integers(0, h - ch)), int(rng.integers(0, w - cw))
        out.append(np.ascontiguousarray(im[y:y + ch, x:x + cw]))
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("q")
    return tiny_classifier(str(d / "tiny.onnx"), classes=5,
                           meta={"pyimgcls.preprocess": CFG.to_json(), "pyimgcls.labels": json.dumps(list("abcde"))})


@pytest.fixture(scope="module")
def tiny_int8(tiny, photos, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("q8") / "tiny.int8.onnx")
    rep = quantize(tiny, _crops(photos, 40), out, samples=32, evaluation=_crops(photos, 30, seed=1),
                   throughput_batch=8, threads=1)
    return out, rep


# ----------------------------------------------------------------------------- the report
def test_compare_outputs_counts_by_hand():
    # 4 images, 6 classes; logits built so that each case is known
    a = np.full((4, 6), -5.0)
    b = np.full((4, 6), -5.0)
    # 0: confident, same
    a[0, 1] = b[0, 1] = 5
    # 1: confident, differs; fp32's class 2nd in int8
    a[1, 2], b[1, 3], b[1, 2] = 5, 5, 4.9
    # 2: ambiguous (p < 0.5), differs
    a[2, [0, 3, 4]], b[2, [0, 3, 4]] = (1.0, 0.9, 0.9), (0.9, 0.9, 1.0)
    # 3: ambiguous; int8 has fp32's top class 6th: outside its top-5
    a[3], b[3, :5] = 0.0, 3
    a[3, 5] = 0.1
    r = compare_outputs(a, b, labels=[1, 2, -1, 5])
    assert r.images == 4 and r.top1_agreement == 0.25
    assert r.confident_images == 2 and r.confident_agreement == 0.5
    assert r.top5_containment == 0.75
    assert r.labelled_images == 3 and r.accuracy_fp32 == 1.0 and r.accuracy_int8 == pytest.approx(1 / 3)
    pa = np.exp(a) / np.exp(a).sum(1, keepdims=True)
    pb = np.exp(b) / np.exp(b).sum(1, keepdims=True)
    top = pa.argmax(1)
    assert r.mean_abs_prob_diff == pytest.approx(np.abs(pb[np.arange(4), top] - pa[np.arange(4), top]).mean())
    assert r.mean_max_prob_diff == pytest.approx(np.abs(pb - pa).max(1).mean())


def test_compare_outputs_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="expected two"):
        compare_outputs(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="labels has 2 entries for 3 images"):
        compare_outputs(np.zeros((3, 4)), np.zeros((3, 4)), labels=[0, 1])


# ----------------------------------------------------------------------------- quantizing a model
def test_quantize_writes_qdq_model_with_metadata_and_report(tiny, tiny_int8):
    out, rep = tiny_int8
    m = onnx.load(out)
    ops = {n.op_type for n in m.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    props = {p.key: p.value for p in m.metadata_props}
    src = {p.key: p.value for p in onnx.load(tiny).metadata_props}
    assert all(props[k] == v for k, v in src.items())  # labels, preprocessing copied
    q = json.loads(props["pyimgcls.quantization"])
    import hashlib

    assert q["method"] == "minmax" and q["samples"] == 32 and q["per_channel"] is True
    assert q["source_sha256"] == hashlib.sha256(open(tiny, "rb").read()).hexdigest()
    s = Session(out, providers=["CPUExecutionProvider"])
    assert s.quantized and s.quantization == q and s.labels == list("abcde")
    assert rep.samples == 32 and rep.quantized_ops > 0 and rep.agreement.images == 30
    assert rep.agreement.top1_agreement >= 0.9  # a 3-input linear layer loses little at 8 bits
    assert rep.throughput_fp32 > 0 and rep.throughput_int8 > 0
    assert "top-1 agreement" in str(rep) and "model only batch 8" in str(rep)


def test_already_quantized_model_is_refused(tiny_int8, photos, tmp_path):
    with pytest.raises(ValueError, match="already quantized"):
        quantize(tiny_int8[0], _crops(photos, 20), str(tmp_path / "again.onnx"), samples=16)
    # also without pyimgcls' metadata: by its operators
    m = onnx.load(tiny_int8[0])
    del m.metadata_props[:]
    onnx.save(m, str(tmp_path / "bare.onnx"))
    with pytest.raises(ValueError, match=r"already quantized \(\d+ quantized operators\)"):
        quantize(str(tmp_path / "bare.onnx"), _crops(photos, 20), str(tmp_path / "again.onnx"), samples=16)


def test_too_few_readable_calibration_images(tiny, photos, tmp_path):
    import cv2

    d = tmp_path / "cal"
    d.mkdir()
    for i, im in enumerate(_crops(photos, 5)):
        cv2.imwrite(str(d / f"ok{i}.png"), im[:, :, ::-1])
    for i in range(4):
        (d / f"broken{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError, match=rf"5 readable images, at least {MIN_CALIBRATION_IMAGES} are needed "
                                         rf"\(4 unreadable: .*broken0.jpg"):
        quantize(tiny, str(d), str(tmp_path / "out.onnx"))
    assert not (tmp_path / "out.onnx").exists()


def _model_without_quantizable_ops(path):
    g = helper.make_graph([helper.make_node("ReduceMean", ["x", "axes"], ["p"], keepdims=0),
                           helper.make_node("Neg", ["p"], ["logits"])], "noq",  # none ONNX Runtime quantizes
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
                          [numpy_helper.from_array(np.array([2, 3], np.int64), "axes")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    m.metadata_props.add(key="pyimgcls.preprocess", value=CFG.to_json())
    onnx.save(m, path)
    return path


def test_models_onnx_runtime_cannot_quantize(photos, tmp_path):
    cal = _crops(photos, 20)
    with pytest.raises(ValueError, match="found nothing to quantize"):
        quantize(_model_without_quantizable_ops(str(tmp_path / "noq.onnx")), cal, str(tmp_path / "o.onnx"),
                 samples=16)
    (tmp_path / "junk.onnx").write_bytes(b"this is no protobuf at all" * 10)
    with pytest.raises(ValueError, match="junk.onnx: not an ONNX model|cannot load this model"):
        quantize(str(tmp_path / "junk.onnx"), cal, str(tmp_path / "o.onnx"), samples=16)


def test_bad_arguments(tiny, photos, tmp_path):
    cal = _crops(photos, 20)
    with pytest.raises(ValueError, match="method must be one of minmax, entropy, percentile"):
        quantize(tiny, cal, str(tmp_path / "o.onnx"), method="kl")
    with pytest.raises(ValueError, match=f"samples must be an int >= {MIN_CALIBRATION_IMAGES}"):
        quantize(tiny, cal, str(tmp_path / "o.onnx"), samples=4)
    with pytest.raises(ValueError, match="no node named 'nope'"):
        quantize(tiny, cal, str(tmp_path / "o.onnx"), samples=16, nodes_to_exclude=["nope"])
    with pytest.raises(FileNotFoundError, match="model not found"):
        quantize(str(tmp_path / "missing.onnx"), cal, str(tmp_path / "o.onnx"))


def test_exclude_patterns_resolve_in_graph_order():
    from pyimgcls.jobs.quantize import _resolve_nodes

    names = ["/_conv_stem/Pad", "/_conv_stem/Conv", "/_blocks.0/Conv", "/_blocks.1/Conv", "/_blocks.12/Conv", "/fc"]
    assert _resolve_nodes(["/fc", "/_blocks.[0-1]/*", "/_conv_stem/*"], names, "m") == [
        "/fc", "/_blocks.0/Conv", "/_blocks.1/Conv", "/_conv_stem/Pad", "/_conv_stem/Conv"]
    with pytest.raises(ValueError, match=r"the pattern '/_head/\*' matches no node of m"):
        _resolve_nodes(["/_head/*"], names, "m")


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_methods_run(tiny, photos, tmp_path, method):
    out = str(tmp_path / f"{method}.onnx")
    rep = quantize(tiny, _crops(photos, 20), out, method=method, samples=16, throughput_batch=None)
    assert rep.method == method and json.loads(Session(out).info.metadata["pyimgcls.quantization"])["method"] == method


# ----------------------------------------------------------------------------- the shipped int8 model
@pytest.fixture(scope="module")
def clf8():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the no-VNNI fallback warns: skip there (mocked below)
        try:
            return Classifier(precision="int8", threads=2)
        except RuntimeWarning:
            pytest.skip("this CPU has no VNNI: Classifier(precision='int8') runs fp32 (tested by mocking below)")


def test_shipped_int8_model_keeps_the_answers(clf8, photos):
    assert clf8.precision == "int8" and clf8.session.source.endswith("efficientnet_lite0.int8.onnx")
    q = clf8.session.quantization
    assert q["format"] == "QDQ" and q["samples"] >= 128
    with open(pyimgcls.default_model_path(), "rb") as f:
        import hashlib

        assert q["source_sha256"] == hashlib.sha256(f.read()).hexdigest()  # made from the shipped fp32 file
    clf = Classifier(threads=2)
    imgs = list(photos.values())
    r32 = clf.predict(imgs, probabilities=True)
    r8 = clf8.predict(imgs, probabilities=True)
    a = compare_outputs(np.stack([r.probabilities for r in r32]), np.stack([r.probabilities for r in r8]),
                        probabilities=True)
    assert a.confident_agreement == 1.0 and a.top5_containment == 1.0
    by = dict(zip(photos, r8))
    assert by["coffee"].label_name == "espresso" and by["coffee"].score > 0.8
    assert by["flower"].label_name == "daisy"
    assert {n for _, n, _ in by["chelsea"].top_k[:3]} == {"tiger cat", "Egyptian cat", "tabby"}
    assert clf8.labels == clf.labels and clf8.class_ids == clf.class_ids and clf8.config == clf.config


def test_shipped_int8_model_records_its_bias_correction(capsys):
    # tools/make_int8_model.py: block 0 kept in float, every other int8 Conv but the head bias-corrected
    from pyimgcls.runtime.session import Session

    q = Session(pyimgcls.default_model_path("int8"), providers=["CPUExecutionProvider"], threads=1).quantization
    assert q["exclude_patterns"] == ["/_blocks.0/*"] and len(q["nodes_to_exclude"]) == 3
    bc = q["bias_correction"]
    assert bc["corrected"] == 46 and bc["images"] >= 64
    assert cli_main(["info", pyimgcls.default_model_path("int8")]) == 0
    assert "kept float: /_blocks.0/* (3 nodes); bias-corrected: 46 Convs on 128 images;" in capsys.readouterr().out


def test_int8_predict_one_and_pickle(clf8, photos):
    r = clf8.predict_one(photos["coffee"])
    assert r.label_name == "espresso"
    clone = pickle.loads(pickle.dumps(clf8))
    assert clone.precision == "int8" and clone.predict_one(photos["coffee"]).label == r.label


def test_without_vnni_int8_warns_and_runs_fp32(monkeypatch):
    monkeypatch.setattr(cpu, "int8_dot_product", lambda: False)
    with pytest.warns(RuntimeWarning, match="no 8-bit dot product instruction .* running the fp32 model"):
        c = Classifier(precision="int8", threads=1)
    assert c.precision == "fp32" and c.session.source == pyimgcls.default_model_path()
    monkeypatch.setattr(cpu, "int8_dot_product", lambda: None)  # the OS does not say: int8 as asked
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert Classifier(precision="int8", threads=1).precision == "int8"


def test_cpu_flag_parsing():
    text = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n\nprocessor\t: 1\nflags\t: fpu\n"
    assert {"avx512_vnni", "avx2", "fpu"} <= cpu._linux_flags(text)
    arm = "processor\t: 0\nFeatures\t: fp asimd asimddp\n"
    assert "asimddp" in cpu._linux_flags(arm)
    assert cpu.int8_dot_product() in (True, False, None)


def test_precision_argument_checks(tiny):
    with pytest.raises(ValueError, match="precision must be one of fp32, int8; got 'bf16'"):
        Classifier(precision="bf16")
    with pytest.raises(ValueError, match="is not a quantized model; make an int8 copy with `pyimgcls quantize"):
        Classifier(tiny, precision="int8")


def test_own_int8_model(tiny_int8):
    c = Classifier(tiny_int8[0], precision="int8", threads=1)
    assert c.precision == "int8"
    assert Classifier(tiny_int8[0], threads=1).precision == "int8"  # runs as it is, says what it is


# ----------------------------------------------------------------------------- command line
def test_cli_quantize_and_info(tiny, photos, tmp_path, capsys):
    import cv2

    cal = tmp_path / "cal"
    cal.mkdir()
    for i, im in enumerate(_crops(photos, 20)):
        cv2.imwrite(str(cal / f"c{i}.jpg"), im[:, :, ::-1])
    out = tmp_path / "tiny.int8.onnx"
    args = ["quantize", tiny, "--calibration", str(cal), "--out", str(out), "--samples", "16", "--eval", str(cal),
            "--threads", "1", "-q"]
    assert cli_main(args) == 0
    text = capsys.readouterr().out
    assert "top-1 agreement" in text and "minmax calibration on 16 images" in text
    assert cli_main(args) == 2  # exists
    assert "exists; give --overwrite" in capsys.readouterr().err
    assert cli_main(["info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "precision   int8, quantized by pyimgcls: QDQ uint8 activations, int8 per-channel weights; minmax " \
           "calibration on 16 images" in info
    assert cli_main(["info", tiny]) == 0 and "precision   float" in capsys.readouterr().out
    assert cli_main(["quantize", tiny, "--calibration", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_bench_precision_int8_measures_both(clf8):
    res = run_bench(precision="int8", model_only=True, batch_sizes=(2,), duration=0.05, iterations=2, warmup=0,
                    threads=1)
    assert res.precision == "int8" and res.reference is not None and res.reference["precision"] == "fp32"
    assert "int8 against fp32" in str(res) and res.model.endswith("efficientnet_lite0.int8.onnx")
