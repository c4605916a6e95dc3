"""pyimgcls: fast image classification and detection inference with a native C++ core.

The package's layers, top to bottom (imports only run downwards; see README's "Layout"):
``cli`` -> ``jobs`` -> ``tasks`` -> ``runtime`` / ``preprocessing`` / ``ops`` / ``metrics`` -> ``io``,
``runtime.threads``, ``_core`` (the private native module).
"""

try:
    from . import _core  # noqa: F401 - the check that the native module is built
except ImportError:  # a source checkout without a build: say what to do, not a cryptic cycle
    raise ImportError(
        "pyimgcls is not built here: the native module pyimgcls._core is missing. "
        "Install it with `pip install .` (or `pip install -e .` to develop) and run pytest as the README says; "
        "to use an installed pyimgcls, run Python outside the source checkout"
    ) from None

from . import metrics, ops
from .io.images import ImageDecodeError, image_size, read_image
from .jobs.autolabel import AutoLabeler, AutoLabelResult, ReviewQueue
from .jobs.cluster import Clustering, cluster
from .jobs.eval import EvalReport, evaluate
from .jobs.quantize import QuantizeReport, quantize
from .jobs.score import ScoreSummary, score
from .ops.detections import Detections
from .preprocessing import ImageTransform, PreprocessConfig, Transforms, preprocess
from .runtime.session import ModelInfo, Session, annotate_model
from .tasks.classifier import Classification, Classifier, default_model_path
from .tasks.detector import DetectionResult, Detector
from .tasks.faces import FaceDetector

__all__ = [
    "Classification",
    "Classifier",
    "ModelInfo",
    "Session",
    "annotate_model",
    "default_model_path",
    "FaceDetector",
    "Detections",
    "DetectionResult",
    "Detector",
    "metrics",
    "ops",
    "ImageDecodeError",
    "ImageTransform",
    "PreprocessConfig",
    "Transforms",
    "image_size",
    "preprocess",
    "read_image",
    "AutoLabeler",
    "AutoLabelResult",
    "ReviewQueue",
    "Clustering",
    "cluster",
    "ScoreSummary",
    "score",
    "EvalReport",
    "evaluate",
    "QuantizeReport",
    "quantize",
]

__version__ = "0.1.0"
