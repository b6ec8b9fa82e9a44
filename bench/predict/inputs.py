"""Inputs of ``bench-predict``: files and folders -> a list of items; each item decoded (in a
worker of a torch DataLoader) to the run's model input and a small display copy, or to the
one-line reason it could not be read. Nothing is decoded before it is needed, so a folder of
thousands of images streams through in batches."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from bench.data.decode import SkippedImage, decode_image, decode_resized_uint8
from bench.data.transforms import eval_transform
from bench.errors import BenchError
from bench.predict.dicom import is_dicom, read_dicom

__all__ = ["InputItem", "expand_inputs", "InputDataset", "input_loader", "DISPLAY_MAX"]

DISPLAY_MAX = 512  # longest side of the copy drawn on the page and under the heatmap


@dataclass(frozen=True)
class InputItem:
    index: int
    input: str  # the path as found
    image_id: str  # file name, or the path relative to the folder given
    missing: str | None = None  # reason when the input path itself does not exist


def expand_inputs(inputs: Sequence[str | os.PathLike]) -> list[InputItem]:
    """Files as given, folders walked recursively (sorted, hidden entries left out)."""
    if not inputs:
        raise BenchError("no INPUT given: name image files, DICOM files or folders to score")
    items: list[InputItem] = []
    for raw in inputs:
        path = Path(os.path.expanduser(str(raw)))
        if path.is_dir():
            found = []
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(Path(root) / f for f in files if not f.startswith("."))
            for f in sorted(found):
                items.append(InputItem(len(items), str(f), f.relative_to(path).as_posix()))
        elif path.is_file():
            items.append(InputItem(len(items), str(path), path.name))
        else:
            items.append(InputItem(len(items), str(path), path.name or str(path),
                                   missing=f"{path}: no such file or folder"))
    return items


def _resize_gray(gray: np.ndarray, size: int) -> np.ndarray:
    """Float [0, 1] H x W -> uint8 size x size, as ``decode_resized_uint8`` treats deep sources
    (float resize, one rounding); that function only takes paths, DICOM pixels are an array."""
    small = Image.fromarray(np.ascontiguousarray(gray, dtype=np.float32), mode="F").resize(
        (int(size), int(size)), Image.Resampling.BILINEAR)
    return np.clip(np.rint(np.asarray(small, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def _display(gray: np.ndarray) -> np.ndarray:
    """uint8 copy with the longest side at most DISPLAY_MAX (aspect kept)."""
    img = Image.fromarray(np.clip(np.rint(gray * 255.0), 0, 255).astype(np.uint8), mode="L")
    h, w = gray.shape
    scale = DISPLAY_MAX / max(h, w)
    if scale < 1:
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8).copy()


class InputDataset(Dataset):
    """Item ``i`` -> a dict: ``ok``, ``reason``, ``x`` (normalised 3 x S x S float tensor, the
    run's own eval transform), ``display`` (uint8 H x W or None), ``truncated``, ``dicom`` meta."""

    def __init__(self, items: Sequence[InputItem], image_size: int, mean, std, truncated: str = "load",
                 display: bool = True, with_patient: bool = False):
        self.items = list(items)
        self.size = int(image_size)
        self.transform = eval_transform(mean, std)
        self.truncated = truncated
        self.display = display
        self.with_patient = with_patient

    def __len__(self) -> int:
        return len(self.items)

    def _decode(self, item: InputItem) -> dict:
        if is_dicom(item.input):
            dcm = read_dicom(item.input, with_patient=self.with_patient)
            small = _resize_gray(dcm.array, self.size)
            shown = _display(dcm.array) if self.display else None
            return {"small": small, "display": shown, "truncated": False, "dicom": dcm.meta,
                    "original_size": list(dcm.array.shape)}
        # The training decoder: the same bytes give the same model input as in the run's test.
        small, truncated = decode_resized_uint8(item.input, self.size, self.truncated)
        shown, shape = None, None
        if self.display:
            full = decode_image(item.input, "load").array
            shown, shape = _display(full), list(full.shape)
        return {"small": small, "display": shown, "truncated": bool(truncated), "dicom": None,
                "original_size": shape}

    def __getitem__(self, i: int) -> dict:
        item = self.items[i]
        out = {"index": item.index, "input": item.input, "image_id": item.image_id, "ok": False,
               "reason": item.missing, "x": None, "display": None, "truncated": False, "dicom": None,
               "original_size": None}
        if item.missing:
            return out
        try:
            dec = self._decode(item)
        except SkippedImage as exc:
            out["reason"] = f"{item.input}: {exc.reason} (the run's data.truncated policy skips such files)"
            return out
        except BenchError as exc:
            out["reason"] = str(exc)
            return out
        except Exception as exc:  # one bad file must not end the batch: report it as a skip
            out["reason"] = f"{item.input}: cannot decode ({type(exc).__name__}: {exc})"
            return out
        x = self.transform(torch.from_numpy(dec.pop("small")).unsqueeze(0))
        out.update(dec, ok=True, x=x.contiguous())
        return out


def _worker_init(_):
    torch.set_num_threads(1)  # decoding is per-process work; threads would only contend


def _as_list(batch):
    return batch


def input_loader(dataset: InputDataset, batch_size: int, workers: int) -> DataLoader:
    """Batches (lists of item dicts) in input order; ``workers`` decode in parallel, with at
    most ``2 * workers`` batches decoded ahead (bounded memory)."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                      collate_fn=_as_list, worker_init_fn=_worker_init if workers else None,
                      prefetch_factor=2 if workers else None, persistent_workers=False)
