"""Multinomial logistic regression on the native core: the auto-label head for large label sets.

The problem is scikit-learn's ``LogisticRegression(C=C)`` with three or more classes (multinomial,
L2 penalty on the weights, unpenalised intercept), in scikit-learn's scaling:

    f(W, b) = (1/n) sum_i [logsumexp(z_i) - z_{i, y_i}] + ||W||^2 / (2 C n),   z_i = W x_i + b

so the optimum is scikit-learn's, and ``tol`` means what it means there (newton-cg stops when the
largest absolute entry of the gradient of f is at most ``tol``).

The solver is line-search Newton-CG (Nocedal & Wright, "Numerical Optimization", 2nd ed., Algorithm
7.1): each step solves H s = -g by conjugate gradients to the residual
``min(0.5, sqrt(||g||_1)) * ||g||_1`` in the L1 norm, as scikit-learn's newton-cg measures it (the
L2 norm of Algorithm 7.1 took 380 products where this takes 203 on 8,000 x 1,280 x 10 at C=30),
stopping early on non-positive curvature, then backtracks from the full step until the Armijo
condition holds (or, once f is flat to its rounding, until the gradient shrinks). Every pass over the rows (the loss with its
gradient, a Hessian-vector product) is one call of ``_core.softmax_loss_grad`` /
``_core.softmax_hessp``: float32 rows read once per call, blocks of rows on every core, sums in
double. scikit-learn runs the same two products through BLAS on float32 features; the fused native
passes take about half its time per product (measured on 8,000 x 1,280 x 10, benchmarks/README.md).

Thread safety: ``fit_softmax_head`` may run in several threads at once (no shared state; the
process-wide BLAS limit it sets for its small vector products is set from the main thread only);
a ``SoftmaxHead`` is read-only after fitting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import _core

__all__ = ["SoftmaxHead", "fit_softmax_head", "one_blas_thread"]


@dataclass
class SoftmaxHead:
    """A fitted multinomial head with scikit-learn's attribute names.

    Attributes:
        coef_: (K, D) float64 weights.
        intercept_: (K,) float64 biases.
        n_iter_: Newton steps taken.
        n_hessp_: Hessian-vector products (passes over the rows beside the gradients).
        converged: whether the gradient reached ``tol``.
    """

    coef_: np.ndarray
    intercept_: np.ndarray
    n_iter_: int = 0
    n_hessp_: int = 0
    converged: bool = False

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """Logits (N, K) float64 of rows ``x`` (N, D)."""
        return np.asarray(x, np.float64) @ self.coef_.T + self.intercept_


def _cg(hessp, g: np.ndarray, tol: float, max_iter: int) -> tuple[np.ndarray, int]:
    """Approximately solves ``H s = -g`` until the residual's L1 norm is at most ``tol`` (N&W
    Algorithm 7.1's inner loop); returns ``(s, products)``."""
    s = np.zeros_like(g)
    r = g.copy()  # residual H s + g
    d = -r
    rr = float(r @ r)
    for i in range(max_iter):
        if float(np.abs(r).sum()) <= tol:
            return s, i
        hd = hessp(d)
        curv = float(d @ hd)
        if curv <= 1e-14 * float(d @ d):  # non-positive curvature along d (the intercept's null direction)
            return (s if i else -g), i + 1
        alpha = rr / curv
        s += alpha * d
        r += alpha * hd
        rr_new = float(r @ r)
        d = -r + (rr_new / rr) * d
        rr = rr_new
    return s, max_iter


def fit_softmax_head(x: np.ndarray, y: np.ndarray, n_classes: int, C: float, *, warm: SoftmaxHead | None = None,
                     tol: float = 1e-5, max_iter: int = 100, max_cg: int = 200, threads: int = 0,
                     kernel: str = "auto") -> SoftmaxHead:
    """Fits the head (see the module docstring).

    Args:
        x: (N, D) float32 C-contiguous rows (L2-normalised embeddings), finite.
        y: (N,) class indices in [0, n_classes).
        n_classes: K >= 3 (two classes are scikit-learn's binary model, a different problem).
        C: inverse regularisation strength, > 0.
        warm: a head to start from (its solution at another C or on other rows), else zeros.
        tol: stop when the largest absolute gradient entry is at most this.
        max_iter, max_cg: Newton steps, and conjugate-gradient products a step.
        threads: 0 for every usable core.
        kernel: ``"auto"``, ``"scalar"`` or ``"avx2"`` (the native inner loops; for tests).

    Raises:
        ValueError: bad shapes, no rows, NaN or infinite values in ``x``, fewer than 3 classes, a
            label outside [0, K), C <= 0.
        TypeError: ``y`` not of an integer dtype.
    """
    y = np.asarray(y)
    if y.dtype.kind not in "iu":  # a cast would truncate 1.5 to class 1 silently
        raise TypeError(f"y must hold integer class indices, got {y.dtype}")
    x = np.ascontiguousarray(x, np.float32)
    y = np.ascontiguousarray(y, np.int64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"x must be (N, D) and y (N,), got {x.shape} and {y.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"x must have at least one row, got shape {x.shape}")
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():  # NaN would run every CG product and return the starting head
        raise ValueError(f"x holds NaN or infinite values (first at row {int(np.argmin(finite))})")
    if n_classes < 3:
        raise ValueError(f"the multinomial head needs at least 3 classes, got {n_classes}")
    if not (C > 0 and math.isfinite(C)):
        raise ValueError(f"C must be a positive number, got {C}")
    n, dim = x.shape
    k = n_classes
    if warm is not None:
        w = np.array(warm.coef_, np.float64)
        b = np.array(warm.intercept_, np.float64)
        if w.shape != (k, dim) or b.shape != (k,):
            raise ValueError(f"warm start must be ({k}, {dim}) and ({k},), got {w.shape} and {b.shape}")
    else:
        w = np.zeros((k, dim))
        b = np.zeros(k)
    lam = 1.0 / (C * max(n, 1))

    def evaluate(w, b):
        loss, gw, gb, p = _core.softmax_loss_grad(x, w.astype(np.float32), b.astype(np.float32), y, threads, kernel)
        f = loss / n + 0.5 * lam * float(np.sum(w * w))
        g = np.concatenate([(gw / n + lam * w).ravel(), gb / n])
        return f, g, p

    with one_blas_thread():
        return _newton_cg(evaluate, x, y, k, dim, lam, w, b, tol, max_iter, max_cg, threads, kernel)


def one_blas_thread():
    """One BLAS thread for the vector arithmetic between the native passes, which is small: BLAS
    threads there only spin on the cores the passes use (measured: 12.8 against 5 ms a product with
    OpenBLAS's default threads). Set from the main thread only: OpenBLAS's (pthreads) limit is
    process-wide, and limits entered and left in overlapping order from several threads restore
    each other's saved values (threadpoolctl before 3.8), which can leave BLAS on one thread for
    the rest of the process. Elsewhere BLAS is left as it is (a cost, never a different answer)."""
    import contextlib
    import threading

    if threading.current_thread() is not threading.main_thread():
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits  # scikit-learn's dependency, like the head

    return threadpool_limits(1)


def _newton_cg(evaluate, x, y, k, dim, lam, w, b, tol, max_iter, max_cg, threads, kernel) -> SoftmaxHead:
    n = x.shape[0]
    nw = k * dim
    f, g, p = evaluate(w, b)
    head = SoftmaxHead(w, b)
    for it in range(max_iter):
        if float(np.max(np.abs(g))) <= tol:
            head.converged = True
            break
        head.n_iter_ = it + 1

        def hessp(v, p=p):
            vw = v[:nw].reshape(k, dim)
            hw, hb = _core.softmax_hessp(x, p, vw.astype(np.float32), v[nw:].astype(np.float32), threads, kernel)
            return np.concatenate([(hw / n + lam * vw).ravel(), hb / n])

        gnorm = float(np.abs(g).sum())
        step, used = _cg(hessp, g, min(0.5, math.sqrt(gnorm)) * gnorm, max_cg)
        head.n_hessp_ += used
        slope = float(g @ step)
        if slope >= 0:  # not a descent direction (rounding at the optimum): stop here
            break
        t = 1.0
        gmax = float(np.max(np.abs(g)))
        for _ in range(40):
            w_new = w + t * step[:nw].reshape(k, dim)
            b_new = b + t * step[nw:]
            f_new, g_new, p_new = evaluate(w_new, b_new)
            if f_new <= f + 1e-4 * t * slope:  # Armijo
                break
            # Near the optimum the decrease a step promises (|slope| ~ |g|^2) falls below the
            # rounding of f (float32 logits: about 1e-8 relative), and Armijo cannot tell. A step
            # that leaves f unchanged to that rounding and shrinks the gradient is progress.
            if f_new <= f + 1e-7 * abs(f) and float(np.max(np.abs(g_new))) < gmax:
                break
            t *= 0.5
        else:
            break  # no decrease along the step: f is flat to rounding here
        w, b, f, g, p = w_new, b_new, f_new, g_new, p_new
        head.coef_, head.intercept_ = w, b
    else:
        head.converged = float(np.max(np.abs(g))) <= tol
    return head
