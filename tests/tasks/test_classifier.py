import io
import json
import os
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper
from PIL import Image

import pyimgcls
from pyimgcls import Classifier, PreprocessConfig, Session, annotate_model, preprocess
from _helpers.models import tiny_classifier, tiny_detector_output_model
from _helpers.peers import timm_eval_chain
from pyimgcls.cli.main import main as cli_main

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "images")


@pytest.fixture(scope="module")
def clf():
    return Classifier(threads=2)


def _pil_reference_probs(img: np.ndarray) -> np.ndarray:
    """Plain PIL -> NumPy -> onnxruntime chain with the model's documented preprocessing."""
    x = timm_eval_chain(img, 224, 0.875, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))[None]
    sess = ort.InferenceSession(pyimgcls.default_model_path(), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {"input": x})[0][0].astype(np.float64)
    p = np.exp(logits - logits.max())
    return p / p.sum()


def test_default_model_real_answers(clf, photos):
    r = clf.predict([photos["chelsea"], photos["coffee"], photos["flower"]], top_k=3)
    assert {n for _, n, _ in r[0].top_k} == {"tiger cat", "Egyptian cat", "tabby"}
    assert r[1].label == 967 and r[1].label_name == "espresso" and r[1].score > 0.9
    assert r[2].label_name == "daisy"


def test_same_tensor_gives_the_same_logits_as_onnxruntime(clf, photos, tmp_path):
    """The classifier adds nothing between the preprocessed tensor and the answer: the tensor that
    pyimgcls.preprocess makes, fed to a plain ONNX Runtime session, gives the same probabilities.
    (How close that tensor is to PIL's chain is the preprocessing tests' business.)"""
    sess = ort.InferenceSession(pyimgcls.default_model_path(), providers=["CPUExecutionProvider"])
    path = tmp_path / "astronaut.jpg"
    Image.fromarray(photos["astronaut"]).save(path, quality=90)
    names = ("chelsea", "coffee", "astronaut", "china")
    inputs = [photos[n] for n in names] + [str(path)]
    images = [photos[n] for n in names] + [pyimgcls.read_image(str(path))]  # the exact (full) decode
    x, _ = preprocess(images, clf.config)
    logits = sess.run(None, {"input": x})[0].astype(np.float64)
    want = np.exp(logits - logits.max(axis=1, keepdims=True))
    want /= want.sum(axis=1, keepdims=True)
    got = clf.predict(inputs, probabilities=True, batch_size=2)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.probabilities, w, rtol=1e-5, atol=1e-7)
        assert g.label == int(np.argmax(w))
    one = clf.predict_one(str(path), top_k=1000)
    assert [c for c, _, _ in one.top_k] == [c for c, _, _ in got[-1].top_k] or one.label == got[-1].label


def test_default_decode_is_exact_and_agrees_with_the_reference_chain(clf):
    """README's astronaut.jpg: the default (full decode) gives the reference chain's top-1 (PIL full
    decode, PIL antialiased resize, ONNX Runtime); the DCT-scaled fast decode is an explicit option."""
    path = os.path.join(EXAMPLES, "astronaut.jpg")
    ref = _pil_reference_probs(np.asarray(Image.open(path).convert("RGB")))
    assert np.sort(ref)[-1] - np.sort(ref)[-2] > 0.01  # bobsled 14.4%, football helmet 13.0%
    default = clf.predict([path])[0]
    assert default.label == int(np.argmax(ref)) == clf.predict([path], fast_decode=False)[0].label
    assert clf.predict_one(path).label == default.label
    fast = clf.predict([path], fast_decode=True)[0]
    assert fast.ok  # the option works; its answer may differ (it does here: see README)


def test_inputs_order_and_errors(clf, tmp_path, photos):
    good = tmp_path / "a" / "coffee.jpg"
    good.parent.mkdir()
    Image.fromarray(photos["coffee"]).save(good, quality=90)
    (tmp_path / "a" / "sub").mkdir()
    Image.fromarray(photos["chelsea"]).save(tmp_path / "a" / "sub" / "cat.png")
    (tmp_path / "a" / "broken.jpg").write_bytes(good.read_bytes()[:300])
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    buf = io.BytesIO()
    Image.fromarray(photos["coffee"]).save(buf, format="PNG")
    inputs = [str(tmp_path / "a"), buf.getvalue(), Image.fromarray(photos["chelsea"]),
              np.zeros((5, 5, 2), np.uint8), str(tmp_path / "missing.jpg"), photos["coffee"].astype(np.float32)]
    r = clf.predict(inputs, batch_size=2)
    assert [x.source for x in r[:3]] == [str(tmp_path / "a" / "broken.jpg"), str(good),
                                         str(tmp_path / "a" / "sub" / "cat.png")]
    assert r[0].error and "broken.jpg" in r[0].error and r[0].label is None
    assert r[1].label_name == "espresso" and r[2].label_name in ("tiger cat", "Egyptian cat", "tabby")
    assert r[3].label_name == "espresso" and r[4].label_name in ("tiger cat", "Egyptian cat", "tabby")
    assert "(5, 5, 2)" in r[5].error
    assert "missing.jpg" in r[6].error
    assert "float32" in r[7].error
    assert len(r) == 8
    with pytest.raises(pyimgcls.ImageDecodeError, match="broken.jpg"):
        clf.predict([str(tmp_path / "a")], errors="raise")


def test_predict_one_equals_batch_and_allocates_little(clf, photos):
    import tracemalloc

    img = photos["coffee"]
    a = clf.predict_one(img)
    b = clf.predict([img], fast_decode=False)[0]
    assert a.label == b.label and a.top_k[0][2] == pytest.approx(b.top_k[0][2], rel=1e-5)
    clf.predict_one(img)
    tracemalloc.start()
    for _ in range(5):
        clf.predict_one(img)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 100_000  # no batch-sized buffers: input and output are bound once


def test_predict_one_from_many_threads_gives_each_thread_its_own_answer(clf, photos):
    """8 threads calling predict_one on one Classifier get their own image's answer (a web server
    does this); before per-thread buffers, about a third of the calls returned another's labels."""
    import threading

    names = ["astronaut", "chelsea", "coffee", "rocket", "china", "flower"]
    want = {n: clf.predict_one(photos[n]) for n in names}
    assert len({w.label for w in want.values()}) >= 5  # the images really differ in answer
    wrong, errors = [], []
    start = threading.Barrier(8)

    def worker(k):
        try:
            start.wait()
            for i in range(40):
                n = names[(k + i) % len(names)]
                r = clf.predict_one(photos[n])
                if r.label != want[n].label or r.top_k != want[n].top_k:
                    wrong.append((k, i, n, r.label_name))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not wrong, (errors, wrong[:5], len(wrong))


def test_embed_reproduces_logits(clf, photos):
    emb = clf.embed([photos["chelsea"], photos["coffee"]])
    assert emb.shape == (2, 1280) and emb.dtype == np.float32
    m = onnx.load(pyimgcls.default_model_path())
    gemm = [n for n in m.graph.node if n.op_type == "Gemm"][-1]
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    w, b = inits[gemm.input[1]], inits[gemm.input[2]]
    logits = emb @ (w.T if gemm.attribute and any(a.name == "transB" and a.i for a in gemm.attribute) else w) + b
    r = clf.predict([photos["chelsea"], photos["coffee"]], probabilities=True)
    assert [int(np.argmax(x)) for x in logits] == [x.label for x in r]
    bad = clf.embed([photos["coffee"], b"junk"], errors="record")
    assert np.isnan(bad[1]).all() and np.isfinite(bad[0]).all()


# ----------------------------------------------------------------------------- own models
def test_fixed_batch_model_pads_last_batch(tmp_path, photos):
    p = tiny_classifier(str(tmp_path / "fixed.onnx"), batch=4)
    cfg = PreprocessConfig(size=(32, 32), resize="stretch")
    annotate_model(p, p, preprocess=cfg, labels=["a", "b", "c", "d"])
    clf = Classifier(p)
    assert clf.session.info.batch == 4
    ims = [photos[k] for k in ("chelsea", "coffee", "astronaut", "rocket", "china", "flower")]
    r = clf.predict(ims, batch_size=3, probabilities=True)
    assert len(r) == 6 and all(x.ok for x in r)
    x, _ = preprocess(ims, cfg)
    sess = ort.InferenceSession(p, providers=["CPUExecutionProvider"])
    logits = np.concatenate([sess.run(None, {"x": np.concatenate([x[i:i + 4], np.zeros((4 - len(x[i:i + 4]), 3, 32, 32), np.float32)])})[0][: len(x[i:i + 4])] for i in range(0, 6, 4)])
    assert [int(np.argmax(z)) for z in logits] == [q.label for q in r]
    assert r[0].label_name in "abcd"


def test_nhwc_uint8_probability_model_and_defaults(tmp_path, photos):
    p = tiny_classifier(str(tmp_path / "u8.onnx"), layout="NHWC", dtype=TensorProto.UINT8, size=48, softmax=True)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = Session(p)
    assert any("assuming 48x48 NHWC uint8" in str(x.message) for x in w)
    assert s.info.layout == "NHWC" and s.info.dtype == "uint8" and s.info.size == (48, 48)
    assert s.info.output_kind == "probabilities"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = Classifier(p)
    r = clf.predict([photos["coffee"]], probabilities=True)[0]
    assert r.probabilities.sum() == pytest.approx(1.0, abs=1e-5)  # not softmaxed twice
    assert clf.labels == ["0", "1", "2", "3"]


def test_multi_label_thresholds(tmp_path, photos):
    p = tiny_classifier(str(tmp_path / "ml.onnx"), meta={"pyimgcls.preprocess": PreprocessConfig(size=(32, 32)).to_json()})
    clf = Classifier(p)
    r = clf.predict([photos["coffee"]], multi_label=True, threshold=[0.0, 1.1, 0.0, 1.1], probabilities=True)[0]
    assert [c for c, _, _ in r.labels] == sorted([0, 2], key=lambda c: -r.probabilities[c])
    x, _ = preprocess([photos["coffee"]], clf.config)
    logits = ort.InferenceSession(p, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0][0]
    np.testing.assert_allclose(r.probabilities, 1 / (1 + np.exp(-logits.astype(np.float64))), rtol=1e-5)
    with pytest.raises(ValueError, match="one per class"):
        clf.predict([photos["coffee"]], multi_label=True, threshold=[0.5, 0.5])


def test_session_providers_and_errors(tmp_path):
    s = Session(pyimgcls.default_model_path(), providers=["CPUExecutionProvider"], threads=1)
    assert s.providers == ["CPUExecutionProvider"]
    auto = Session(pyimgcls.default_model_path())
    assert auto.providers[-1] == "CPUExecutionProvider"
    with pytest.raises(ValueError, match="unknown execution provider"):
        Session(pyimgcls.default_model_path(), providers=["NoSuchProvider"])
    with pytest.raises(FileNotFoundError):
        Session(str(tmp_path / "nope.onnx"))
    with pytest.raises(TypeError):
        Session(12)
    d = auto.describe()
    assert d["input"]["name"] == "input" and d["classes"] == 1000


def test_annotate_model_round_trip(tmp_path):
    p = tiny_classifier(str(tmp_path / "m.onnx"))
    cfg = PreprocessConfig(size=(32, 32), resize="letterbox", mean=(0.5,) * 3, std=(0.25,) * 3)
    annotate_model(p, str(tmp_path / "m2.onnx"), preprocess=cfg, labels=["w", "x", "y", "z"], output="logits")
    s = Session(str(tmp_path / "m2.onnx"))
    assert s.preprocess_config == cfg and s.labels == ["w", "x", "y", "z"] and not s.assumptions


CFG32 = PreprocessConfig(size=(32, 32), resize="stretch")


def _ort_logits(path, img, cfg=CFG32):
    x, _ = preprocess([img], cfg)
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0].reshape(-1)


@pytest.mark.parametrize("tail", [("Identity",), ("Flatten",), ("Reshape", "Identity")])
def test_softmax_before_shape_only_ops_is_not_softmaxed_again(tmp_path, photos, tail):
    p = tiny_classifier(str(tmp_path / "sm.onnx"), softmax=True, tail=tail)
    annotate_model(p, p, preprocess=CFG32)
    clf = Classifier(p)
    assert clf.session.info.output_kind == "probabilities"
    r = clf.predict([photos["coffee"]], probabilities=True)[0]
    np.testing.assert_allclose(r.probabilities, _ort_logits(p, photos["coffee"]), rtol=1e-6)


def test_annotate_model_refuses_a_label_count_that_differs(tmp_path):
    p = tiny_classifier(str(tmp_path / "m.onnx"), classes=4)
    with pytest.raises(ValueError, match="labels has 3 names but the model's output logits has 4 classes"):
        annotate_model(p, str(tmp_path / "m2.onnx"), labels=["a", "b", "c"])
    # a file written by another tool with the wrong count is refused at load, with both numbers
    m = onnx.load(p)
    m.metadata_props.add(key="pyimgcls.labels", value=json.dumps(["a", "b", "c", "d", "e"]))
    onnx.save(m, str(tmp_path / "m3.onnx"))
    with pytest.raises(ValueError, match="holds 5 names but the model's output logits has 4 classes"):
        Session(str(tmp_path / "m3.onnx"))


def test_classifier_refuses_a_detector_output(tmp_path):
    p = tiny_detector_output_model(str(tmp_path / "det.onnx"), anchors=64, classes=4)
    with pytest.raises(ValueError, match=r"\(N, C\) class scores.*out has shape \(N, 8, 64\)"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Classifier(p)


def test_external_data_is_loaded_beside_the_model_not_from_the_cwd(tmp_path, photos, monkeypatch):
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.mkdir()
    b.mkdir()
    pa = tiny_classifier(str(a / "m.onnx"), external_data=True, seed=1, meta={"pyimgcls.preprocess": CFG32.to_json()})
    tiny_classifier(str(b / "m.onnx"), external_data=True, seed=2)  # another model's weights.bin in b/
    want = _ort_logits(pa, photos["coffee"])
    for cwd in (b, tmp_path):
        monkeypatch.chdir(cwd)
        clf = Classifier(pa)
        r = clf.predict([photos["coffee"]], probabilities=True)[0]
        z = want.astype(np.float64)
        np.testing.assert_allclose(r.probabilities, np.exp(z - z.max()) / np.exp(z - z.max()).sum(), rtol=1e-5)
        assert clf.predict_one(photos["coffee"]).label == int(np.argmax(want))


def test_fixed_batch_2_works_in_predict_one(tmp_path, photos):
    p = tiny_classifier(str(tmp_path / "b2.onnx"), batch=2, meta={"pyimgcls.preprocess": CFG32.to_json()})
    clf = Classifier(p)
    want = _ort_logits_batch(p, photos["coffee"], batch=2)
    r = clf.predict_one(photos["coffee"], top_k=4)
    assert r.label == int(np.argmax(want))
    assert clf.predict([photos["coffee"]])[0].label == r.label


def _ort_logits_batch(path, img, batch):
    x, _ = preprocess([img], CFG32)
    feed = np.concatenate([x, np.zeros((batch - 1,) + x.shape[1:], x.dtype)])
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": feed})[0][0].reshape(-1)


def test_nk11_output_is_k_classes(tmp_path, photos):
    p = tiny_classifier(str(tmp_path / "k11.onnx"), out4d=True, classes=5, meta={"pyimgcls.preprocess": CFG32.to_json()})
    clf = Classifier(p)
    assert clf.num_classes == 5 and len(clf.labels) == 5
    want = _ort_logits(p, photos["coffee"])
    r = clf.predict([photos["coffee"]], top_k=5, probabilities=True)[0]
    assert r.probabilities.shape == (5,) and r.label == int(np.argmax(want)) and len(r.top_k) == 5
    assert clf.predict_one(photos["coffee"], top_k=5).top_k == r.top_k or \
        [c for c, _, _ in clf.predict_one(photos["coffee"], top_k=5).top_k] == [c for c, _, _ in r.top_k]


def _has_cuda() -> bool:
    return "CUDAExecutionProvider" in pyimgcls.runtime.session.available_providers()


def _float16_copy(path: str) -> str:
    """The embedded model with float16 weights, input and output, and a float16 preprocess config."""
    import dataclasses

    m = onnx.load(pyimgcls.default_model_path())
    for init in m.graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))
    for v in list(m.graph.input) + list(m.graph.output) + list(m.graph.value_info):
        if v.type.tensor_type.elem_type == TensorProto.FLOAT:
            v.type.tensor_type.elem_type = TensorProto.FLOAT16
    for node in m.graph.node:
        for a in node.attribute:
            if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16)))
    meta = {p.key: p.value for p in m.metadata_props}
    cfg = PreprocessConfig.from_json(meta["pyimgcls.preprocess"])
    meta["pyimgcls.preprocess"] = dataclasses.replace(cfg, dtype="float16").to_json()
    del m.metadata_props[:]
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)
    return path


@pytest.mark.parametrize("provider", ["CPUExecutionProvider", "CUDAExecutionProvider"])
def test_float16_model_matches_float32(tmp_path, photos, provider):
    if provider == "CUDAExecutionProvider" and not _has_cuda():
        pytest.skip("needs an NVIDIA GPU with the CUDA provider")
    half = Classifier(_float16_copy(str(tmp_path / "fp16.onnx")), providers=[provider, "CPUExecutionProvider"])
    assert half.session.info.dtype == "float16" and half.session.providers[0] == provider
    full = Classifier(providers=["CPUExecutionProvider"])
    ims = [photos[k] for k in ("chelsea", "coffee", "astronaut")]
    a = half.predict(ims, probabilities=True)
    b = full.predict(ims, probabilities=True)
    for x, y in zip(a, b):
        assert np.abs(x.probabilities - y.probabilities).max() < 2e-2  # float16 weights and activations
    assert half.predict_one(photos["coffee"]).label_name == "espresso"


@pytest.mark.skipif(not _has_cuda(), reason="needs an NVIDIA GPU with the CUDA provider")
def test_cuda_provider_matches_cpu(photos):
    gpu = Classifier(providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert gpu.session.providers[0] == "CUDAExecutionProvider"
    cpu = Classifier(providers=["CPUExecutionProvider"])
    ims = [photos[k] for k in ("chelsea", "coffee", "astronaut")]
    a = gpu.predict(ims, probabilities=True)
    b = cpu.predict(ims, probabilities=True)
    for x, y in zip(a, b):
        assert x.label == y.label
        assert np.abs(x.probabilities - y.probabilities).max() < 1e-3


# ----------------------------------------------------------------------------- CLI
def test_cli_classify_table_and_json(capsys):
    assert cli_main(["classify", EXAMPLES, "--top-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "coffee.jpg" in out and "espresso" in out and "top-3" in out
    assert cli_main(["classify", os.path.join(EXAMPLES, "coffee.jpg"), "--json", "--top-k", "2"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["label_name"] == "espresso" and len(rows[0]["top_k"]) == 2 and rows[0]["error"] is None


def test_cli_classify_reports_bad_files(tmp_path, capsys):
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    assert cli_main(["classify", str(tmp_path)]) == 1
    assert "ERROR" in capsys.readouterr().out


def test_cli_info(capsys):
    assert cli_main(["info"]) == 0
    out = capsys.readouterr().out
    assert "NCHW float32" in out and "classes     1000" in out and "CPUExecutionProvider" in out
    assert cli_main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["output_kind"] == "logits"
    assert cli_main(["info", "/nonexistent.onnx"]) == 2
