"""Backbone zoo (timm + Ultralytics YOLOv8-cls) with one classification head; see docs/models.md."""

from bench.models.classifier import Classifier, Head, create_model
from bench.models.registry import ZOO, ModelSpec, register, spec_for

__all__ = ["Classifier", "Head", "ModelSpec", "ZOO", "create_model", "register", "spec_for"]
