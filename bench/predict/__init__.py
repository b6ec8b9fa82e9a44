"""``bench-predict``: one finished run on new radiographs (image files, folders, DICOM) ->
predictions.csv, Grad-CAM++ overlays and report.pdf (docs/predict.md)."""

from bench.predict.run import predict

__all__ = ["predict"]
