"""The native softmax passes (``_core.softmax_loss_grad`` / ``softmax_hessp``) against their NumPy
twins on every inner-loop path, and the Newton-CG head built on them against scikit-learn."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from _helpers.reference import softmax_hessp_ref, softmax_loss_grad_ref
from pyimgcls import _core
from pyimgcls.jobs._softmax_head import fit_softmax_head

KERNELS = [k for k in ("scalar", "avx2") if _core.linear_kernel_available(k)]


def test_this_machine_reaches_the_avx2_path():
    import os
    import platform

    if os.environ.get("PYIMGCLS_BUILD_VARIANT") == "nosimd":
        pytest.skip("the portable build (tools/native_variant_tests.sh nosimd) has no AVX2 kernels")
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("AVX2 kernels exist on x86 only")
    if not os.path.exists("/proc/cpuinfo"):
        pytest.skip("no /proc/cpuinfo to read the CPU flags from (not Linux)")
    with open("/proc/cpuinfo") as fh:
        flags = fh.read()
    if " avx2" not in flags or " fma" not in flags:
        pytest.skip("this CPU has no AVX2 + FMA")
    assert "avx2" in KERNELS  # the build must compile the AVX2 file where the CPU runs it


def _problem(rng, n, d, k, scale=1.0):
    x = (rng.standard_normal((n, d)) * scale).astype(np.float32)
    w = rng.standard_normal((k, d)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    y = rng.integers(0, k, n)
    return x, w, b, y


def _close(got, ref, rel=2e-5):
    """float32 products summed in float32 blocks: agreement relative to the largest magnitude."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
    np.testing.assert_allclose(got, ref, rtol=0, atol=rel * scale * 10)


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 200), d=st.integers(1, 53), k=st.integers(1, 12), threads=st.sampled_from([1, 2, 3]),
       seed=st.integers(0, 2**31 - 1))
def test_loss_grad_and_hessp_equal_the_twins(kernel, n, d, k, threads, seed):
    # d covers the 16- and 8-column tiles and the scalar tail; k the 5-class tiles and remainders 1-4;
    # n the 2-row tiles, a lone last row and several 64-row blocks
    rng = np.random.default_rng(seed)
    x, w, b, y = _problem(rng, n, d, k)
    loss, gw, gb, p = _core.softmax_loss_grad(x, w, b, y, threads, kernel)
    rl, rgw, rgb, rp = softmax_loss_grad_ref(x, w, b, y)
    assert gw.shape == (k, d) and gb.shape == (k,) and p.shape == (n, k) and p.dtype == np.float32
    assert loss == pytest.approx(rl, rel=1e-5, abs=1e-3)
    _close(gw, rgw)
    _close(gb, rgb)
    np.testing.assert_allclose(p, rp, atol=1e-5)
    v = rng.standard_normal((k, d)).astype(np.float32)
    vb = rng.standard_normal(k).astype(np.float32)
    hw, hb = _core.softmax_hessp(x, p, v, vb, threads, kernel)
    rhw, rhb = softmax_hessp_ref(x, p, v, vb)
    _close(hw, rhw)
    _close(hb, rhb)


@pytest.mark.parametrize("kernel", KERNELS)
def test_many_rows_on_several_threads(kernel):
    """Many 64-row blocks and several thread splits; real-shaped rows (L2-normalised)."""
    rng = np.random.default_rng(3)
    x, w, b, y = _problem(rng, 5000, 200, 10)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    rl, rgw, rgb, rp = softmax_loss_grad_ref(x, w, b, y)
    for threads in (1, 2, 7):
        loss, gw, gb, p = _core.softmax_loss_grad(x, w, b, y, threads, kernel)
        assert loss == pytest.approx(rl, rel=1e-6)
        np.testing.assert_allclose(gw, rgw, atol=1e-4 * np.abs(rgw).max())
        np.testing.assert_allclose(gb, rgb, atol=1e-3)
        hw, hb = _core.softmax_hessp(x, p, w, b, threads, kernel)
        rhw, rhb = softmax_hessp_ref(x, p, w, b)
        np.testing.assert_allclose(hw, rhw, atol=1e-4 * np.abs(rhw).max())


@pytest.mark.parametrize("kernel", KERNELS)
def test_more_classes_than_the_stack_block_holds(kernel):
    """Above 64 classes a block's logits live on the heap."""
    rng = np.random.default_rng(4)
    x, w, b, y = _problem(rng, 150, 19, 70)
    loss, gw, gb, p = _core.softmax_loss_grad(x, w, b, y, 2, kernel)
    rl, rgw, rgb, rp = softmax_loss_grad_ref(x, w, b, y)
    assert loss == pytest.approx(rl, rel=1e-5)
    _close(gw, rgw)
    np.testing.assert_allclose(p, rp, atol=1e-5)
    hw, hb = _core.softmax_hessp(x, p, w, b, 2, kernel)
    _close(hw, softmax_hessp_ref(x, p, w, b)[0])


def test_the_two_kernels_agree():
    if len(KERNELS) < 2:
        pytest.skip("only the portable kernel runs here")
    rng = np.random.default_rng(5)
    x, w, b, y = _problem(rng, 700, 77, 7)
    a = _core.softmax_loss_grad(x, w, b, y, 2, "scalar")
    c = _core.softmax_loss_grad(x, w, b, y, 2, "avx2")
    assert a[0] == pytest.approx(c[0], rel=1e-6)
    for u, v in zip(a[1:], c[1:]):
        np.testing.assert_allclose(u, v, atol=1e-4 * max(1.0, np.abs(u).max()))


def test_concurrent_calls_give_the_serial_answer():
    rng = np.random.default_rng(9)
    x, w, b, y = _problem(rng, 3000, 64, 10)
    ref = _core.softmax_loss_grad(x, w, b, y, 2)
    out = [None] * 6

    def run(i):
        out[i] = _core.softmax_loss_grad(x, w, b, y, 2)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for o in out:  # same rows on the same threads: the same bits
        assert o[0] == ref[0]
        np.testing.assert_array_equal(o[1], ref[1])


def test_bad_input_is_named():
    rng = np.random.default_rng(1)
    x, w, b, y = _problem(rng, 20, 8, 3)
    with pytest.raises(ValueError, match=r"y\[4\] = 3 is not a class index in \[0, 3\)"):
        _core.softmax_loss_grad(x, w, b, np.where(np.arange(20) == 4, 3, y))
    with pytest.raises(ValueError, match=r"y\[0\] = -1"):
        _core.softmax_loss_grad(x, w, b, np.full(20, -1))
    with pytest.raises(ValueError, match=r"w must have shape \(K, 8\)"):
        _core.softmax_loss_grad(x, w[:, :5].copy(), b, y)
    with pytest.raises(ValueError, match=r"b must have shape \(3,\)"):
        _core.softmax_loss_grad(x, w, b[:2].copy(), y)
    with pytest.raises(ValueError, match=r"y must have shape \(20,\)"):
        _core.softmax_loss_grad(x, w, b, y[:5].copy())
    with pytest.raises(ValueError, match=r"p must have shape \(20, 3\)"):
        _core.softmax_hessp(x, np.zeros((20, 2), np.float32), w, b)
    with pytest.raises(ValueError, match="kernel must be"):
        _core.softmax_loss_grad(x, w, b, y, 1, "avx512")
    with pytest.raises(TypeError):  # a strided view is not copied silently
        _core.softmax_loss_grad(x[:, ::2], w[:, :4].copy(), b, y)
    with pytest.raises(TypeError):
        _core.softmax_loss_grad(x.astype(np.float64), w, b, y)
    xn = x.copy()
    xn[3, 2] = np.nan  # propagates, no crash
    loss, gw, _, _ = _core.softmax_loss_grad(xn, w, b, y)
    assert np.isnan(loss) and np.isnan(gw).any()


# ----------------------------------------------------------------------------- the head
@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x.astype(np.float32), y


@pytest.mark.parametrize("C", [0.1, 10.0])
def test_head_is_scikit_learns_optimum(digits, C):
    from sklearn.linear_model import LogisticRegression

    x, y = digits
    head = fit_softmax_head(x, y, 10, C, tol=1e-7)
    assert head.converged and head.coef_.shape == (10, 64)
    ref = LogisticRegression(C=C, tol=1e-10, max_iter=20000).fit(x.astype(np.float64), y)
    z = head.decision_function(x)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    # float32 rows against scikit-learn's float64 fit at a far tighter tolerance: the optima agree
    # to 1e-4 in probability (measured up to 2e-5); a wrong objective (penalty scaling, bias
    # penalised, a missing class) differs by 1e-2 or more
    np.testing.assert_allclose(p, ref.predict_proba(x.astype(np.float64)), atol=1e-4)


@pytest.mark.parametrize("kernel", KERNELS)
def test_warm_start_and_kernels_reach_the_same_optimum(digits, kernel):
    x, y = digits
    cold = fit_softmax_head(x, y, 10, 3.0, tol=1e-6, kernel=kernel)
    first = fit_softmax_head(x, y, 10, 0.3, tol=1e-6, kernel=kernel)
    warm = fit_softmax_head(x, y, 10, 3.0, tol=1e-6, warm=first, kernel=kernel)
    assert warm.converged and cold.converged and warm.n_iter_ > 0
    np.testing.assert_allclose(warm.decision_function(x), cold.decision_function(x), atol=2e-3)


def test_head_bad_input():
    x = np.zeros((6, 4), np.float32)
    with pytest.raises(ValueError, match="at least 3 classes"):
        fit_softmax_head(x, np.array([0, 1] * 3), 2, 1.0)
    with pytest.raises(ValueError, match="C must be a positive number"):
        fit_softmax_head(x, np.array([0, 1, 2] * 2), 3, 0.0)
    with pytest.raises(ValueError, match="is not a class index"):
        fit_softmax_head(x, np.array([0, 1, 5] * 2), 3, 1.0)
    with pytest.raises(ValueError, match=r"warm start must be \(3, 4\)"):
        fit_softmax_head(x, np.array([0, 1, 2] * 2), 3, 1.0,
                         warm=fit_softmax_head(np.zeros((6, 5), np.float32), np.array([0, 1, 2] * 2), 3, 1.0))
    # a strided view of the rows is copied, not refused
    xs = np.random.default_rng(0).random((6, 8), dtype=np.float32)
    h = fit_softmax_head(xs[:, ::2], np.array([0, 1, 2] * 2), 3, 1.0)
    np.testing.assert_allclose(h.coef_, fit_softmax_head(np.ascontiguousarray(xs[:, ::2]),
                                                         np.array([0, 1, 2] * 2), 3, 1.0).coef_)


def test_head_refuses_empty_non_finite_and_non_integer_input():
    """No rows, a NaN / inf row or fractional labels: a ValueError / TypeError naming the input,
    not a ZeroDivisionError, a silently all-zero head after max_cg products, or truncated labels."""
    x = np.random.default_rng(0).random((9, 4), dtype=np.float32)
    y = np.array([0, 1, 2] * 3)
    with pytest.raises(ValueError, match=r"x must have at least one row, got shape \(0, 4\)"):
        fit_softmax_head(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), 3, 1.0)
    for bad in (np.nan, np.inf, -np.inf):
        xb = x.copy()
        xb[4, 1] = bad
        with pytest.raises(ValueError, match=r"x holds NaN or infinite values \(first at row 4\)"):
            fit_softmax_head(xb, y, 3, 1.0)
    with pytest.raises(TypeError, match="y must hold integer class indices, got float64"):
        fit_softmax_head(x, y + 0.5, 3, 1.0)
    # integer labels of any width are fine
    h = fit_softmax_head(x, y.astype(np.int32), 3, 1.0)
    np.testing.assert_array_equal(h.coef_, fit_softmax_head(x, y, 3, 1.0).coef_)


def test_heads_fitted_in_several_threads_equal_serial_fits(digits):
    """The documented thread safety: concurrent fits, each with its own C, reach the heads that the
    same fits reach one at a time."""
    x, y = digits
    cs = (0.3, 3.0, 30.0)
    serial = [fit_softmax_head(x, y, 10, c, tol=1e-6, threads=1) for c in cs]
    out = [None] * len(cs)
    errors = []

    def run(i):
        try:
            out[i] = fit_softmax_head(x, y, 10, cs[i], tol=1e-6, threads=1)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(len(cs))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    for a, b in zip(out, serial):
        assert a.converged and b.converged
        # the kernels' sums are the same bits; the small vector products between them may take
        # another BLAS thread count in a thread threadpoolctl does not limit
        np.testing.assert_allclose(a.decision_function(x), b.decision_function(x), atol=1e-6)


def test_blas_limit_is_set_from_the_main_thread_only(digits, monkeypatch):
    """The BLAS limit for the vector products between passes is process-wide (OpenBLAS with
    pthreads): limits entered and left in overlapping order from several threads restore each
    other's saved values (threadpoolctl before 3.8) and can leave BLAS on one thread for good. So
    the fit limits BLAS from the main thread only; in other threads it leaves BLAS alone."""
    import contextlib

    import threadpoolctl

    x, y = digits
    entered = []

    @contextlib.contextmanager
    def spy(*args, **kwargs):
        entered.append(threading.current_thread() is threading.main_thread())
        yield

    monkeypatch.setattr(threadpoolctl, "threadpool_limits", spy)
    fit_softmax_head(x[:300], y[:300], 10, 1.0)
    assert entered == [True]
    t = threading.Thread(target=fit_softmax_head, args=(x[:300], y[:300], 10, 1.0))
    t.start()
    t.join()
    assert entered == [True]
