"""Per-layer CAMs (pytorch-grad-cam, one pass over all layers), localisation scores against the
fracture boxes, ROAD faithfulness, figures and human rating sheets (docs/explain.md)."""

from bench.explain.cams import (
    METHODS,
    PerLayerEigenCAM,
    PerLayerGradCAM,
    PerLayerGradCAMPlusPlus,
    check_layer_order,
    eigen_projection,
    make_cam,
)
from bench.explain.cases import select_cases
from bench.explain.layers import resolve_layers
from bench.explain.localisation import boxes_mask, energy, iou, localisation_scores, pointing_game
from bench.explain.rating import aggregate_ratings, export_rating_sheet, import_ratings, read_ratings
from bench.explain.run import explain_model, explain_run

__all__ = [
    "METHODS", "PerLayerEigenCAM", "PerLayerGradCAM", "PerLayerGradCAMPlusPlus", "aggregate_ratings",
    "boxes_mask", "check_layer_order", "eigen_projection", "energy", "explain_model", "explain_run",
    "export_rating_sheet", "import_ratings", "iou", "localisation_scores", "make_cam", "pointing_game",
    "read_ratings", "resolve_layers", "select_cases",
]
