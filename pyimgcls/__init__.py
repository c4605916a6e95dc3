"""pyimgcls: fast image classification and detection inference with a native C++ core."""

from . import ops
from .decode import ImageDecodeError, image_size, read_image
from .detections import Detections
from .preprocessing import ImageTransform, PreprocessConfig, Transforms, preprocess

__all__ = [
    "Detections",
    "ops",
    "ImageDecodeError",
    "ImageTransform",
    "PreprocessConfig",
    "Transforms",
    "image_size",
    "preprocess",
    "read_image",
]

__version__ = "0.1.0"
