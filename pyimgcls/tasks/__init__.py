"""Model tasks on a shared base (``base.ModelTask``: session, preprocessing, batching, the
low-latency single-image path): ``classifier.Classifier``, ``detector.Detector``, ``faces.FaceDetector``."""

from .base import ModelTask
from .classifier import Classification, Classifier, default_model_path
from .detector import DetectionResult, Detector, load_detector
from .faces import FaceDetector

__all__ = ["ModelTask", "Classification", "Classifier", "default_model_path", "DetectionResult", "Detector",
           "FaceDetector", "load_detector"]
