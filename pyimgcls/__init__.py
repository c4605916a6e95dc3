"""pyimgcls: fast image classification and detection inference with a native C++ core."""

from . import metrics, ops
from .classifier import Classification, Classifier, default_model_path
from .decode import ImageDecodeError, image_size, read_image
from .detections import Detections
from .scoring import ScoreSummary, score
from .preprocessing import ImageTransform, PreprocessConfig, Transforms, preprocess
from .session import ModelInfo, Session, annotate_model

__all__ = [
    "Classification",
    "Classifier",
    "ModelInfo",
    "Session",
    "annotate_model",
    "default_model_path",
    "Detections",
    "metrics",
    "ops",
    "ImageDecodeError",
    "ImageTransform",
    "PreprocessConfig",
    "Transforms",
    "image_size",
    "preprocess",
    "read_image",
    "ScoreSummary",
    "score",
]

__version__ = "0.1.0"
