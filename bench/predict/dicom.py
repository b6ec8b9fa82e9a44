"""DICOM radiographs -> the grey range training images are decoded to (float32 in [0, 1]).

As a viewer shows them: pydicom's modality LUT (rescale slope/intercept or a Modality LUT),
then its VOI LUT or window (``apply_voi_lut``; none when the file has neither), then a linear
map of that stage's output range onto [0, 1] and MONOCHROME1 inverted (0 is black). The file
is only read; nothing is written back. Patient identifiers are read only when asked for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from bench.errors import BenchError

__all__ = ["DicomImage", "is_dicom", "read_dicom", "PATIENT_FIELDS"]

DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
#: Identifiers kept out of the CSV and the PDF unless --show-patient-ids asks for them.
PATIENT_FIELDS = ("PatientName", "PatientID", "PatientBirthDate")


@dataclass
class DicomImage:
    array: np.ndarray  # float32 H x W in [0, 1], MONOCHROME2 sense (high = bright)
    meta: dict = field(default_factory=dict)  # modality, photometric, window, pixel spacing, ...


def is_dicom(path: str | os.PathLike) -> bool:
    """A DICOM suffix, or the ``DICM`` magic at byte 128 (DICOM files often have no suffix)."""
    if str(path).lower().endswith(DICOM_SUFFIXES):
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _stored_range(ds) -> tuple[float, float]:
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16)
    if int(ds.get("PixelRepresentation", 0)) == 0:
        return 0.0, float(2**bits - 1)
    return float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)


def _output_range(ds, stage: str) -> tuple[float, float]:
    """The value range the last applied stage can produce (the range pydicom's windowing maps
    onto): a VOI LUT's entry depth, else the modality LUT's output of the stored-value range."""
    if stage == "voi_lut":
        depth = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**depth - 1)
    if ds.get("ModalityLUTSequence"):
        depth = int(ds.ModalityLUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**depth - 1)
    lo, hi = _stored_range(ds)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        lo, hi = lo * float(slope) + float(intercept), hi * float(slope) + float(intercept)
    return min(lo, hi), max(lo, hi)


def _spacing(ds) -> tuple[list[float] | None, str | None]:
    for key in ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing"):
        value = ds.get(key)
        if value is not None:
            try:
                return [float(v) for v in value][:2], key
            except (TypeError, ValueError):
                continue
    return None, None


def read_dicom(path: str | os.PathLike, with_patient: bool = False) -> DicomImage:
    """Decode ``path``; a file that cannot be shown as one grey image is a one-line BenchError."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    path = os.fspath(path)
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError as exc:
        raise BenchError(f"{path}: not a DICOM file ({exc})") from None
    except Exception as exc:  # pydicom raises many types on damaged files
        raise BenchError(f"{path}: unreadable DICOM ({type(exc).__name__}: {exc})") from None
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise BenchError(f"{path}: DICOM without pixel data (e.g. a report or structured document): nothing to predict")
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames > 1:
        raise BenchError(f"{path}: multi-frame DICOM ({frames} frames): export the frame to score as its own file")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    try:
        raw = ds.pixel_array
    except Exception as exc:  # missing codec (e.g. JPEG 2000 without pylibjpeg), damaged data
        raise BenchError(f"{path}: cannot decode the DICOM pixel data ({type(exc).__name__}: {exc})") from None
    meta = {"modality": str(ds.get("Modality", "")) or None, "photometric": photometric,
            "rows": int(raw.shape[0]), "columns": int(raw.shape[1]) if raw.ndim > 1 else None}
    spacing, spacing_key = _spacing(ds)
    meta["pixel_spacing_mm"], meta["pixel_spacing_tag"] = spacing, spacing_key
    if with_patient:
        meta["patient"] = {k: str(ds.get(k, "")) for k in PATIENT_FIELDS}

    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        if raw.ndim != 2:
            raise BenchError(f"{path}: {photometric} pixel data of shape {raw.shape}: one 2-D frame expected")
        arr = apply_modality_lut(raw, ds)
        has_lut = bool(ds.get("VOILUTSequence"))
        has_window = ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None
        stage = "voi_lut" if has_lut else ("window" if has_window else "none")
        if stage != "none":
            arr = apply_voi_lut(arr, ds, index=0)
        if stage == "window":
            wc, ww = ds.WindowCenter, ds.WindowWidth
            meta["window"] = [float(wc[0] if ds["WindowCenter"].VM > 1 else wc),
                              float(ww[0] if ds["WindowWidth"].VM > 1 else ww)]
        meta["voi"] = stage
        lo, hi = _output_range(ds, stage)
        gray = (np.asarray(arr, dtype=np.float64) - lo) / (hi - lo) if hi > lo else np.zeros(raw.shape)
        gray = np.clip(gray, 0.0, 1.0)
        if photometric == "MONOCHROME1":
            gray = 1.0 - gray  # MONOCHROME1: the minimum value is white
    elif photometric in ("RGB", "YBR_FULL", "YBR_FULL_422"):
        rgb = raw
        if photometric != "RGB":
            from pydicom.pixels import convert_color_space

            rgb = convert_color_space(raw, photometric, "RGB")
        # ITU-R 601 luminance, as bench.data.decode does for colour files.
        lum = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
        gray = lum / float(2 ** int(ds.get("BitsStored", 8)) - 1)
        meta["voi"] = "none"
    else:
        raise BenchError(f"{path}: PhotometricInterpretation {photometric} is not supported: use MONOCHROME1/2 or RGB")
    return DicomImage(np.clip(gray, 0.0, 1.0).astype(np.float32), meta)
