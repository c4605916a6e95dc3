"""``DetectionResult`` as docs/CONTRACT fixes it, until ``pyimgcls.tasks.detector`` provides it."""

from __future__ import annotations

from dataclasses import dataclass

from ..ops.detections import Detections


@dataclass
class DetectionResult:
    """The detections of one input: ``detections`` is ``None`` when ``error`` says why it failed."""

    source: str
    detections: Detections | None
    error: str | None = None
    image_size: tuple[int, int] | None = None
    stored_size: tuple[int, int] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
