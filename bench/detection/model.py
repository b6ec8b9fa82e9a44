"""Detector model configs (``conf/model/yolov8*_det.yaml``) name Ultralytics architectures; the
detection run builds them itself. This target only answers a classification run that was given one."""

from __future__ import annotations

from bench.errors import BenchError


def detector_only(name: str = "yolov8n_det", **_ignored):
    raise BenchError(f"model={name} is a detector: use it with data=fracatlas_detection or data=fracatlas_detection_set2 "
                     f"(classification models: e.g. model=yolov8n_cls)")
