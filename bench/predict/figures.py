"""Per-image figures of ``bench-predict``: the radiograph and its heatmap overlay with a colour
bar, or the radiograph alone when heatmaps are off (Pillow, matplotlib's colormap)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from bench.record import atomic_write_bytes

__all__ = ["heatmap_to_display", "overlay_png", "original_png", "safe_name"]

METHOD_LABELS = {"gradcampp": "Grad-CAM++", "gradcam": "Grad-CAM", "eigencam": "EigenCAM"}


def safe_name(image_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in image_id)


def heatmap_to_display(cam: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    """An S x S map of the square model input -> the display image's H x W (the model input is
    a plain resize of the whole image, so a resize back is the exact correspondence)."""
    m = F.interpolate(cam[None, None].float(), size=tuple(shape), mode="bilinear", align_corners=False)
    return m[0, 0].clamp(0, 1).cpu().numpy()


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def overlay_png(path: Path, display: np.ndarray, heat: np.ndarray, title: str, method: str, layer: str) -> None:
    """Radiograph | overlay (jet, alpha 0.45) | colour bar 0-1, as one PNG. Composed with Pillow
    from matplotlib's colormap: a matplotlib figure per image cost ~1.7 s here, this ~20 ms."""
    from matplotlib import colormaps
    from PIL import ImageDraw

    cmap = colormaps["jet"]
    h, w = display.shape
    if max(h, w) < 384:  # small inputs: enlarge the panels so the page stays readable
        scale = 384 / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        display = np.asarray(Image.fromarray(display).resize(size, Image.Resampling.BILINEAR))
        heat = np.asarray(Image.fromarray(heat.astype(np.float32), mode="F").resize(size, Image.Resampling.BILINEAR))
        h, w = display.shape
    gray = np.repeat(display[..., None], 3, axis=2).astype(np.float32)
    colour = cmap(np.clip(heat, 0, 1))[..., :3].astype(np.float32) * 255.0
    blend = np.clip(0.55 * gray + 0.45 * colour, 0, 255).astype(np.uint8)
    f_title, f_small = _font(16), _font(13)
    pad, top, bar_w = 12, 48, 18
    title_w = int(ImageDraw.Draw(Image.new("L", (1, 1))).textlength(title, font=f_title)) + 2 * pad
    width = max(4 * pad + 2 * w + bar_w + 44 + 20, title_w)
    canvas = Image.new("RGB", (width, top + h + pad), "white")
    canvas.paste(Image.fromarray(gray.astype(np.uint8)), (pad, top))
    canvas.paste(Image.fromarray(blend), (2 * pad + w, top))
    ramp = cmap(np.linspace(1, 0, h))[:, :3] * 255.0  # top = 1
    bar = np.repeat(ramp[:, None, :], bar_w, axis=1).astype(np.uint8)
    x_bar = 3 * pad + 2 * w
    canvas.paste(Image.fromarray(bar), (x_bar, top))
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, 6), title, fill="black", font=f_title)
    draw.text((pad, top - 20), "radiograph", fill="black", font=f_small)
    draw.text((2 * pad + w, top - 20), f"{METHOD_LABELS.get(method, method)} at {layer.removeprefix('backbone.')}",
              fill="black", font=f_small)
    draw.rectangle((x_bar, top, x_bar + bar_w - 1, top + h - 1), outline="black")
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = top + round((1 - v) * (h - 1))
        draw.line((x_bar + bar_w, y, x_bar + bar_w + 4, y), fill="black")
        draw.text((x_bar + bar_w + 7, y - 7), f"{v:.2f}", fill="black", font=f_small)
    label = "relative importance (min-max per image)"
    lw = int(draw.textlength(label, font=f_small)) + 4
    strip = Image.new("RGB", (lw, 18), "white")
    ImageDraw.Draw(strip).text((2, 1), label, fill="black", font=f_small)
    strip = strip.rotate(90, expand=True)
    if strip.height <= h:
        canvas.paste(strip, (x_bar + bar_w + 44, top + (h - strip.height) // 2))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", compress_level=3)
    atomic_write_bytes(path, buf.getvalue())


def original_png(path: Path, display: np.ndarray) -> None:
    buf = io.BytesIO()
    Image.fromarray(display, mode="L").save(buf, format="PNG", compress_level=3)
    atomic_write_bytes(path, buf.getvalue())
