"""Model tasks on a shared base (``base.ModelTask``: session, preprocessing, batching, the
low-latency single-image path): ``classifier.Classifier``."""

from .base import ModelTask
from .classifier import Classification, Classifier, default_model_path

__all__ = ["ModelTask", "Classification", "Classifier", "default_model_path"]
