"""Shared helpers: zero_division handling exactly as scikit-learn does it."""

from __future__ import annotations

import warnings

import numpy as np

ZERO_DIVISION = ("warn", 0, 1, "nan")


def zero_division_value(zero_division) -> float:
    """The value used where a ratio is 0 / 0 ("warn" and 0 -> 0.0, 1 -> 1.0, nan -> nan)."""
    if isinstance(zero_division, str):
        if zero_division == "warn":
            return 0.0
        if zero_division == "nan":
            return float("nan")
    elif isinstance(zero_division, (int, float)):
        if np.isnan(zero_division):
            return float("nan")
        if zero_division in (0, 1):
            return float(zero_division)
    raise ValueError(f'zero_division must be "warn", 0, 1 or nan, got {zero_division!r}')


def safe_divide(num: np.ndarray, den: np.ndarray, zero_division, what: str) -> np.ndarray:
    num = np.asarray(num, np.float64)
    den = np.asarray(den, np.float64)
    out = np.empty(np.broadcast(num, den).shape)
    bad = den == 0
    np.divide(num, den, out=out, where=~bad)
    if bad.any():
        out[bad] = zero_division_value(zero_division)
        if isinstance(zero_division, str) and zero_division == "warn":
            warnings.warn(f"{what} is ill-defined and being set to 0.0 where there are no samples; "
                          "use zero_division to control this.", UndefinedMetricWarning, stacklevel=3)
    return out


def nan_average(values: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Average ignoring NaN (scikit-learn's _nanaverage); NaN if nothing is left."""
    v = np.asarray(values, np.float64)
    mask = ~np.isnan(v)
    if not mask.any():
        return float("nan")
    if weights is None:
        return float(np.average(v[mask]))
    w = np.asarray(weights, np.float64)[mask]
    if w.sum() == 0:  # all weights zero: scikit-learn falls back to the plain average
        return float(np.average(v[mask]))
    return float(np.average(v[mask], weights=w))


class UndefinedMetricWarning(UserWarning):
    """A metric is 0 / 0 for some class and was set by ``zero_division``."""
