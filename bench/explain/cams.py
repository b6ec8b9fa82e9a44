"""Per-layer CAMs from ONE forward (and one backward) over all target layers.

The methods subclass pytorch-grad-cam's ``GradCAM``, ``GradCAMPlusPlus`` and ``EigenCAM``: the
library supplies the hooks, targets and the method classes; this module overrides only what the
library lacks for a per-layer benchmark:

* ``aggregate_multi_layers`` returns every layer's map ``[B, L, H, W]`` instead of their mean;
* activations and gradients stay on the model's device as torch tensors (the stock hooks copy
  every layer to the host and do the arithmetic in numpy, one layer at a time);
* gradients come from ``torch.autograd.grad`` w.r.t. the hooked activations only, so no weight
  gradients are computed (the stock ``loss.backward`` fills ``.grad`` of every parameter);
* EigenCAM's projection uses the eigen-decomposition of a small Gram matrix instead of a full SVD
  (``eigen_projection``);
* the hooks record which layer fired when, so layers listed out of execution order, a module that
  fires twice or one that never fires is a ``BenchError`` instead of silently mismatched maps.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus
from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from bench.errors import BenchError

__all__ = [
    "METHODS",
    "PerLayerGradCAM",
    "PerLayerGradCAMPlusPlus",
    "PerLayerEigenCAM",
    "make_cam",
    "eigen_projection",
    "minmax_normalise",
    "check_layer_order",
    "logits_of",
]

_EPS = 1e-7  # the library's scale_cam_image constant


def logits_of(output):
    """Logits from a model output: Ultralytics' Classify returns ``(softmax, logits)`` in eval."""
    if isinstance(output, (tuple, list)):
        output = output[-1]
    if not isinstance(output, torch.Tensor) or output.ndim != 2:
        raise BenchError(
            f"model output is {type(output).__name__} of shape {getattr(output, 'shape', None)}: "
            "CAMs need a model whose forward returns logits [B, num_classes]"
        )
    return output


def minmax_normalise(cam: torch.Tensor) -> torch.Tensor:
    """Per-map ``(x - min) / (max - min + 1e-7)`` over the last two dims (``scale_cam_image``)."""
    flat = cam.flatten(-2)
    lo = flat.amin(-1, keepdim=True)
    flat = flat - lo
    hi = flat.amax(-1, keepdim=True)
    return (flat / (hi + _EPS)).view_as(cam)


def eigen_projection(activations: torch.Tensor, sign: str = "library_corrected") -> torch.Tensor:
    """First-principal-component projection of ``[B, C, h, w]`` activations -> ``[B, h, w]``.

    Same quantity as the library's ``get_2d_projection`` (centre the ``hw x C`` matrix ``A`` per
    channel, project onto the first right singular vector), computed from the eigen-decomposition
    of the smaller Gram matrix: ``A^T A`` (C x C) gives ``v`` and ``A v``; when ``hw < C`` (late
    layers: ResNet-50's last block is 49 x 2048) ``A A^T`` gives ``u`` and ``A v = sigma u``.
    The sign of a singular vector is arbitrary (LAPACK's choice in the library), so it is fixed:
    ``sign="library_corrected"`` flips the map when ``|min| > |max|``, the rule of the library's
    ``get_2d_projection_with_sign_correction``; ``sign="none"`` keeps eigh's sign.
    """
    if activations.ndim != 4:
        raise BenchError(f"EigenCAM needs [B, C, h, w] activations, got shape {tuple(activations.shape)}")
    b, c, h, w = activations.shape
    a = torch.nan_to_num(activations.float(), nan=0.0).reshape(b, c, h * w).transpose(1, 2)
    a = a - a.mean(dim=1, keepdim=True)  # [B, hw, C], centred per channel as the library does
    if c <= h * w:
        gram = a.transpose(1, 2) @ a  # [B, C, C]
        _, vecs = torch.linalg.eigh(gram)  # ascending eigenvalues: the last column is the top one
        proj = (a @ vecs[..., -1:]).squeeze(-1)
    else:
        gram = a @ a.transpose(1, 2)  # [B, hw, hw]
        vals, vecs = torch.linalg.eigh(gram)
        proj = vecs[..., -1] * vals[..., -1:].clamp_min(0).sqrt()
    proj = proj.reshape(b, h, w)
    if sign == "library_corrected":
        flat = proj.flatten(1)
        flip = flat.amin(1).abs() > flat.amax(1).abs()
        proj = torch.where(flip[:, None, None], -proj, proj)
    elif sign != "none":
        raise BenchError(f"eigen_projection sign={sign!r}: use 'library_corrected' or 'none'")
    return proj


class _DeviceActivations(ActivationsAndGradients):
    """The library's hook holder, keeping activations on the device and recording firing order."""

    def __init__(self, model, target_layers, reshape_transform, names):
        self.model = model
        self.reshape_transform = reshape_transform
        self.detach = False
        self.names = list(names)
        self.activations: list = []
        self.gradients: list = []
        self.fired: list[int] = []
        self.handles = [
            layer.register_forward_hook(functools.partial(self._save, i))
            for i, layer in enumerate(target_layers)
        ]

    def _save(self, index, module, inputs, output):
        if not isinstance(output, torch.Tensor):
            raise BenchError(
                f"CAM layer {self.names[index]!r} returns {type(output).__name__}, not a tensor: "
                "choose a block whose output is a feature map"
            )
        self.fired.append(index)
        self.activations.append(output)

    def __call__(self, x):
        self.activations, self.gradients, self.fired = [], [], []
        return self.model(x)

    def check_order(self) -> None:
        _check_fired(self.fired, self.names)


def _check_fired(fired: list[int], names: list[str]) -> None:
    seen: set[int] = set()
    for i in fired:
        if i in seen:
            raise BenchError(
                f"CAM layer {names[i]!r} runs more than once per forward: its maps would be mixed "
                "up; choose a module that runs once"
            )
        seen.add(i)
    missing = [names[i] for i in range(len(names)) if i not in seen]
    if missing:
        raise BenchError(f"CAM layers {missing} never run in the model's forward")
    if fired != sorted(fired):
        order = [names[i] for i in fired]
        raise BenchError(f"CAM layers are not in execution order: listed {names}, the forward runs {order}")


def check_layer_order(model: torch.nn.Module, layers: Sequence[torch.nn.Module], example: torch.Tensor,
                      names: Sequence[str] | None = None) -> None:
    """Dry forward (no grad) with hooks: BenchError unless every layer runs once, in list order."""
    names = list(names) if names is not None else [f"layer[{i}]" for i in range(len(layers))]
    fired: list[int] = []
    handles = [
        layer.register_forward_hook(lambda m, i, o, k=k: fired.append(k)) for k, layer in enumerate(layers)
    ]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    _check_fired(fired, names)


class _PerLayerMixin:
    """Overrides of ``BaseCAM`` for one-pass, on-device, per-layer maps. Put it first in the bases.

    ``cam(x, targets)`` returns a float32 numpy array ``[B, L, H, W]`` (one host copy);
    ``cam.maps(x, targets)`` returns the same as a tensor on the model's device.
    Maps are ``relu -> min-max -> bilinear resize -> min-max`` per map: what the stock class
    returns for a single target layer. ``output_size`` (h, w) resizes to something other than the
    input size. Targets default to the predicted class on the logits.
    """

    def __init__(self, model: torch.nn.Module, target_layers: Sequence[torch.nn.Module],
                 reshape_transform: Callable | None = None, layer_names: Sequence[str] | None = None,
                 output_size: tuple[int, int] | None = None) -> None:
        if not target_layers:
            raise BenchError("no CAM target layers given")
        super().__init__(model, list(target_layers), reshape_transform)
        self.activations_and_grads.release()  # replaced: the stock hooks copy to the host
        names = list(layer_names) if layer_names is not None else [f"layer[{i}]" for i in range(len(target_layers))]
        if len(names) != len(target_layers):
            raise BenchError(f"{len(names)} layer names for {len(target_layers)} target layers")
        self.layer_names = names
        self.output_size = output_size
        self.activations_and_grads = _DeviceActivations(model, target_layers, reshape_transform, names)

    # -- the one pass --------------------------------------------------------------------------
    def forward(self, input_tensor, targets=None, eigen_smooth=False):
        # Lightning tests under inference mode; CAMs need autograd, explicitly.
        with torch.inference_mode(False), torch.enable_grad():
            x = input_tensor.to(self.device).clone()  # clone: a normal tensor, not an inference one
            self.outputs = logits = logits_of(self.activations_and_grads(x))
            self.activations_and_grads.check_order()
            acts = self.activations_and_grads.activations
            if self.reshape_transform is not None:
                acts = [self.reshape_transform(a) for a in acts]
            if targets is None:
                targets = [ClassifierOutputTarget(int(c)) for c in logits.argmax(-1).tolist()]
            self.targets = targets
            if self.uses_gradients:
                loss = sum(t(o) for t, o in zip(targets, logits))
                # Gradients w.r.t. the hooked activations only: no parameter gradients.
                grads = torch.autograd.grad(loss, self.activations_and_grads.activations)
                if self.reshape_transform is not None:
                    grads = [self.reshape_transform(g) for g in grads]
            else:
                grads = [None] * len(acts)
        self.outputs = logits.detach()  # keep the logits, not the whole autograd graph
        self.activations_and_grads.activations = [a.detach() for a in acts]
        self.activations_and_grads.gradients = [None if g is None else g.detach() for g in grads]
        with torch.no_grad():
            per_layer = self.compute_cam_per_layer(x, targets, eigen_smooth)
            out = self.aggregate_multi_layers(per_layer)
        self.activations_and_grads.activations, self.activations_and_grads.gradients = [], []
        return out

    def compute_cam_per_layer(self, input_tensor, targets, eigen_smooth):
        size = self.output_size or tuple(input_tensor.shape[-2:])
        maps = []
        for layer, a, g in zip(self.target_layers, self.activations_and_grads.activations,
                               self.activations_and_grads.gradients):
            if a.ndim != 4:
                raise BenchError(
                    f"CAM activations of shape {tuple(a.shape)}: 2D feature maps [B, C, h, w] needed "
                    "(token outputs need a reshape_transform)"
                )
            cam = self.get_cam_image(input_tensor, layer, targets, a.float(),
                                     None if g is None else g.float(), eigen_smooth)
            cam = minmax_normalise(cam.clamp_min(0))
            cam = F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)
            maps.append(minmax_normalise(cam))
        return maps

    def aggregate_multi_layers(self, cam_per_target_layer):
        return torch.cat(cam_per_target_layer, dim=1)  # [B, L, H, W], no mean

    def get_cam_image(self, input_tensor, target_layer, targets, activations, grads, eigen_smooth):
        weights = self.get_cam_weights(input_tensor, target_layer, targets, activations, grads)
        if eigen_smooth:
            return eigen_projection(weights[:, :, None, None] * activations)
        return torch.einsum("bc,bchw->bhw", weights, activations)

    def maps(self, input_tensor, targets=None) -> torch.Tensor:
        return self.forward(input_tensor, targets)

    def __call__(self, input_tensor, targets=None, aug_smooth=False, eigen_smooth=False):
        if aug_smooth:
            raise BenchError("aug_smooth is not supported by the per-layer CAMs")
        return self.forward(input_tensor, targets, eigen_smooth).cpu().numpy()


class PerLayerGradCAM(_PerLayerMixin, GradCAM):
    """Grad-CAM: channel weights = spatial mean of the gradients."""

    def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads):
        return grads.mean(dim=(2, 3))


class PerLayerGradCAMPlusPlus(_PerLayerMixin, GradCAMPlusPlus):
    """Grad-CAM++: the library's closed form (eq. 19 of arXiv:1710.11063), in torch."""

    def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads):
        # relu(g) * g^2 / (2 g^2 + S g^3 + eps) with S the spatial sum of the activations, and
        # aij = 0 where g == 0. With gp = relu(g) that is gp^3 / (gp^2 (2 + S gp) + eps): the same
        # value (zero wherever g <= 0), in fewer passes over the [B, C, h, w] tensors, in place.
        sum_act = activations.sum(dim=(2, 3), keepdim=True)
        gp = grads.clamp_min(0)
        g2 = gp * gp
        den = (sum_act * gp).add_(2).mul_(g2).add_(1e-6)
        return g2.mul_(gp).div_(den).sum(dim=(2, 3))


class PerLayerEigenCAM(_PerLayerMixin, EigenCAM):
    """EigenCAM: first principal component of the activations (no gradients, no target)."""

    def __init__(self, *args, sign: str = "library_corrected", **kwargs):
        self.sign = sign
        super().__init__(*args, **kwargs)

    def get_cam_image(self, input_tensor, target_layer, targets, activations, grads, eigen_smooth):
        return eigen_projection(activations, sign=self.sign)


METHODS: dict[str, type] = {
    "gradcampp": PerLayerGradCAMPlusPlus,
    "eigencam": PerLayerEigenCAM,
    "gradcam": PerLayerGradCAM,
}


def make_cam(method: str, model: torch.nn.Module, layers: Sequence[tuple[str, torch.nn.Module]], **kwargs):
    """``make_cam("gradcampp", model, [(name, module), ...])`` -> a per-layer CAM (context manager)."""
    if method not in METHODS:
        raise BenchError(f"unknown CAM method {method!r}: choose from {sorted(METHODS)}")
    names = [n for n, _ in layers]
    modules = [m for _, m in layers]
    return METHODS[method](model, modules, layer_names=names, **kwargs)
