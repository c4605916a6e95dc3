"""Metrics for classifiers and detectors, identical to scikit-learn and pycocotools, native and
streaming (``update`` / ``merge``) so large or distributed evaluations can run as they go."""

from ._common import UndefinedMetricWarning
from .classification import (
    ClassificationReport,
    ConfusionMatrix,
    MultilabelReport,
    top_k_accuracy,
)
from .detection import (
    STAT_NAMES,
    COCOEvaluator,
    COCOResult,
    evaluate_coco,
    voc_average_precision,
)
from .ranking import (
    RankingState,
    average_precision,
    precision_recall_curve,
    roc_auc,
    threshold_for_precision,
)

__all__ = [
    "COCOEvaluator",
    "COCOResult",
    "ClassificationReport",
    "ConfusionMatrix",
    "MultilabelReport",
    "RankingState",
    "STAT_NAMES",
    "UndefinedMetricWarning",
    "average_precision",
    "evaluate_coco",
    "precision_recall_curve",
    "roc_auc",
    "threshold_for_precision",
    "top_k_accuracy",
    "voc_average_precision",
]
