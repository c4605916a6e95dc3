"""``Classifier.predict_batches`` (arrays per model call) gives what ``predict_iter`` gives per image."""

import io

import numpy as np
import pytest
from PIL import Image

from pyimgcls import Classifier


@pytest.fixture(scope="module")
def clf():
    return Classifier(threads=2)


def _inputs(photos):
    out = []
    for name in ("astronaut", "chelsea", "coffee", "rocket", "china"):
        buf = io.BytesIO()
        Image.fromarray(photos[name]).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    out.insert(2, b"\xff\xd8\xff\xe0 not a jpeg")  # a failed input keeps its place
    out.append(photos["flower"])
    return out


@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_predict_batches_equals_predict_iter(clf, photos, multi_label, batch_size):
    inputs = _inputs(photos)
    batches = list(clf.predict_batches(inputs, batch_size=batch_size, multi_label=multi_label))
    assert [len(b.sources) for b in batches] == [min(batch_size, len(inputs) - s)
                                                 for s in range(0, len(inputs), batch_size)]
    probs = np.concatenate([b.probabilities for b in batches])
    ok = np.concatenate([b.ok for b in batches])
    errors = [e for b in batches for e in b.errors]
    sources = [s for b in batches for s in b.sources]
    ref = clf.predict(inputs, probabilities=True, multi_label=multi_label, batch_size=batch_size)
    assert sources == [r.source for r in ref]
    assert ok.tolist() == [r.error is None for r in ref] and not ok[2]
    assert errors[2] == ref[2].error and errors[0] is None
    assert probs.shape == (len(inputs), 1000) and probs.dtype == np.float64
    for p, r in zip(probs, ref):
        if r.error is None:
            np.testing.assert_allclose(p, r.probabilities, rtol=1e-6, atol=1e-9)
            if not multi_label:
                assert int(np.argmax(p)) == r.label
        else:
            assert not p.any()
