"""Model tasks on a shared base (``base.ModelTask``: session, preprocessing, batching, the
low-latency single-image path): ``classifier.Classifier``, ``detector.Detector``."""

from .base import ModelTask
from .classifier import Classification, Classifier, default_model_path
from .detector import DetectionResult, Detector, load_detector

__all__ = ["ModelTask", "Classification", "Classifier", "default_model_path", "DetectionResult", "Detector",
           "load_detector"]
