"""Box operations, non-maximum suppression and detector-output decoding (native, exact).

``boxes`` (``box_iou``, ``box_convert``), ``nms`` (``nms``, ``batched_nms``, ``soft_nms``),
``crop`` (``crop_resize``), ``yolo`` (``decode_yolo``) and ``detections`` (``Detections``, the result type).
"""

from .boxes import box_convert, box_iou
from .crop import crop_resize
from .detections import Detections
from .nms import batched_nms, nms, soft_nms
from .yolo import decode_yolo

__all__ = ["nms", "batched_nms", "soft_nms", "box_iou", "box_convert", "decode_yolo", "Detections", "crop_resize"]
