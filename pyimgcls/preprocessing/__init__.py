"""Preprocessing: ``PreprocessConfig`` (parameters), ``ImageTransform`` (geometry that maps boxes
back) and ``preprocess`` (the fused native kernel).

The package is named ``preprocessing`` rather than ``preprocess`` so that it never shadows the
public function ``pyimgcls.preprocess``.
"""

from .config import PreprocessConfig
from .preprocess import output_shape, preprocess
from .transform import ImageTransform, Transforms, plan_geometry

__all__ = ["PreprocessConfig", "ImageTransform", "Transforms", "plan_geometry", "preprocess", "output_shape"]
