"""Model tasks on a shared base (``base.ModelTask``: session, preprocessing, batching, the
low-latency single-image path): ``classifier.Classifier``, ``faces.FaceDetector``."""

from .base import ModelTask
from .classifier import Classification, Classifier, default_model_path
from .faces import FaceDetector

__all__ = ["ModelTask", "Classification", "Classifier", "default_model_path", "FaceDetector"]
