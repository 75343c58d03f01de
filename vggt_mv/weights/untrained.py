"""Loaded but untrained: tensors whose values look like their module's initialisation, not like training.

A checkpoint saved from a model whose heads never loaded carries random heads, and provenance says
`checkpoint`. This module looks at the data instead. For every tensor the model knows, `init_specs` lists the
ways its module initialises it (read from the module types and their init settings, so a meta-device model is
enough); `find_untrained` then streams the named tensors one at a time and flags those that match one:

- constant inits (LayerScale `init_values`, zero biases, unit norm weights, the lambda logits): flagged only when
  *every* value equals the init exactly, compared in the tensor's own dtype. A trained LayerNorm bias can sit
  near zero, but never exactly at it in every channel, so "near" never counts.
- random inits (nn.Linear/Conv's kaiming-uniform, DINOv2's trunc_normal(0.02), Xavier, the tiny N(0, 1e-6)
  tokens...): flagged when the tensor's mean, std and kurtosis all lie within `Z_SCORE` standard errors of what
  a fresh draw of that many values gives, and, for a uniform init, when no value leaves ±bound and the largest
  reaches it (a uniform draw fills its interval to within ~1/n). The window shrinks with the tensor's size: for
  the std it is 0.35% of the init's std at 1M values and 5.5% at 4k, where the issue's rule of thumb says 2%.
  Training moves a weight's std, its tails (kurtosis) and, for uniform inits, pushes values past the bound, so a
  trained tensor would have to match all of them at once. Tensors under `MIN_RANDOM_VALUES` values get no
  statistical verdict: too few values to tell a draw from a trained tensor of similar scale.

What it cannot see: a tensor trained so little that it is still statistically its init (that is, for practical
purposes, untrained), and a random init of a type it does not know (listed in `init_specs`, nowhere else).

Cost: one pass over the data of each candidate tensor in float64 chunks of `CHUNK_VALUES` (no full copy); the
first chunk alone rules out most trained tensors, so from a warm page cache a trained checkpoint costs little more
than touching each tensor's first page. From a cold cache the file is read ahead sequentially (read_ahead.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping

import torch
import torch.nn as nn

from vggt_mv.aggregator import LAMBDA_LOGIT_INIT, Aggregator
from vggt_mv.heads.camera import CameraHead
from vggt_mv.heads.track_modules.tracker import BaseTrackerPredictor
from vggt_mv.heads.track_modules.update_transformer import EfficientUpdateFormer
from vggt_mv.layers.layer_scale import LayerScale
from vggt_mv.layers.vision_transformer import DinoVisionTransformer
from vggt_mv.weights.read_ahead import ReadAhead, file_order
from vggt_mv.weights.tree import module_paths

Z_SCORE = 5.0  # a fresh init fails one of the tests with probability ~1e-6
MIN_RANDOM_VALUES = 1024
# At most torch's grain size, so every op runs on the calling thread: larger ops fan out to spin-waiting thread
# pools, measured 20-60x slower on a busy 2-core machine (see compare.py). 256 KiB of float64 per buffer.
CHUNK_VALUES = 32768
EDGE_FILL = 30.0  # a uniform draw of n values reaches within bound*EDGE_FILL/n of its bound but with p = e^-30
# Normalised moments (kurtosis, mu6, mu8) of each random init, for the standard errors of the sample statistics.
SHAPE_MOMENTS = {"uniform": (9 / 5, 27 / 7, 9.0), "normal": (3.0, 15.0, 105.0)}
CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
NORMS = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class InitSpec:
    """One way a module initialises a tensor: every value `scale`, uniform in ±`scale`, or N(0, `scale`)."""

    kind: str  # "constant" | "uniform" | "normal"
    scale: float
    name: str  # what sets it, for the reason: "LayerScale init_values 0.01", "nn.Linear's kaiming-uniform init"

    @property
    def std(self) -> float:
        """Standard deviation of a fresh draw."""
        return {"constant": 0.0, "uniform": self.scale / math.sqrt(3.0), "normal": self.scale}[self.kind]


@dataclass(frozen=True)
class Suspicion:
    """A tensor that looks like an initialisation, with the init it matches and why."""

    key: str
    numel: int
    init: str
    reason: str

    def to_dict(self) -> dict:
        """{"key", "numel", "init", "reason"}: the report's `suspect_untrained` entry for one tensor."""
        return {"key": self.key, "numel": self.numel, "init": self.init, "reason": self.reason}


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight as torch's inits count them: dims 1 and 0 times the receptive field."""
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def kaiming_uniform(weight_shape: tuple[int, ...], type_name: str, what: str) -> InitSpec:
    """torch's default Linear/Conv init of weights and biases: uniform in +-1/sqrt(fan_in)."""
    fan_in = fans(weight_shape)[0]
    init = "kaiming-uniform" if what == "weight" else "default bias"
    return InitSpec("uniform", 1.0 / math.sqrt(fan_in),
                    f"nn.{type_name}'s {init} init: uniform in ±1/sqrt(fan_in {fan_in})")


def xavier_uniform(shape: tuple[int, ...], owner: str) -> InitSpec:
    """Xavier (Glorot) uniform with gain 1: +-sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    return InitSpec("uniform", math.sqrt(6.0 / (fan_in + fan_out)),
                    f"{owner}'s xavier-uniform init: uniform in ±sqrt(6/(fan_in {fan_in} + fan_out {fan_out}))")


def zero(what: str) -> InitSpec:
    return InitSpec("constant", 0.0, f"zero {what}")


def layer_specs(module: nn.Module, name: str, shape: tuple[int, ...]) -> list[InitSpec]:
    """What the module's own type does to its tensor `name` (torch layers and VGGT_MV's modules)."""
    type_name = type(module).__name__
    if isinstance(module, LayerScale) and name == "gamma":
        return [InitSpec("constant", float(module.init_values), f"LayerScale init_values {module.init_values:g}")]
    if isinstance(module, NORMS):
        return {"weight": [InitSpec("constant", 1.0, f"unit {type_name} weight")],
                "bias": [zero(f"{type_name} bias")]}.get(name, [])
    if isinstance(module, (nn.Linear, *CONVOLUTIONS)) and name in ("weight", "bias"):
        kind = "Linear" if isinstance(module, nn.Linear) else type_name
        return [kaiming_uniform(tuple(module.weight.shape), kind, name)]
    if isinstance(module, nn.MultiheadAttention) and name == "in_proj_weight":
        return [xavier_uniform(shape, "nn.MultiheadAttention")]
    if isinstance(module, nn.MultiheadAttention) and name == "in_proj_bias":
        return [zero("nn.MultiheadAttention in_proj bias")]
    tokens = {
        Aggregator: {"camera_token": InitSpec("normal", 1e-6, "the aggregator's normal(std=1e-6) token init"),
                     "register_token": InitSpec("normal", 1e-6, "the aggregator's normal(std=1e-6) token init"),
                     "memory_tokens": InitSpec("normal", 0.02, "the memory tokens' normal(std=0.02) init"),
                     "lambda_pose_logit": InitSpec("constant", LAMBDA_LOGIT_INIT, "the dual-stream lambda logit init"),
                     "lambda_geo_logit": InitSpec("constant", LAMBDA_LOGIT_INIT, "the dual-stream lambda logit init")},
        DinoVisionTransformer: {"pos_embed": InitSpec("normal", 0.02, "DINOv2's trunc_normal(0.02) init"),
                                "cls_token": InitSpec("normal", 1e-6, "DINOv2's normal(std=1e-6) token init"),
                                "register_tokens": InitSpec("normal", 1e-6, "DINOv2's normal(std=1e-6) token init"),
                                "mask_token": zero("DINOv2 mask_token")},
        CameraHead: {"empty_pose_tokens": zero("camera head empty_pose_tokens")},
        EfficientUpdateFormer: {"virual_tracks": InitSpec("normal", 1.0, "the tracker's normal(std=1) init")},
        BaseTrackerPredictor: {"query_ref_token": InitSpec("normal", 1.0, "the tracker's normal(std=1) init")},
    }
    for owner, table in tokens.items():
        if isinstance(module, owner) and name in table:
            return [table[name]]
    return []


def ancestor_specs(ancestors: list[nn.Module], module: nn.Module, name: str, shape: tuple[int, ...]) -> list[InitSpec]:
    """Inits a parent applies to its descendants (DINOv2's trunc-normal Linears, the tracker's Xavier ones)."""
    specs = []
    if not isinstance(module, nn.Linear):
        return specs
    if any(isinstance(a, DinoVisionTransformer) for a in ancestors):
        specs.append(InitSpec("normal", 0.02, "DINOv2's trunc_normal(0.02) Linear init") if name == "weight"
                     else zero("Linear bias (DINOv2 init)"))
    updater = next((a for a in ancestors if isinstance(a, EfficientUpdateFormer)), None)
    if updater is not None:
        if module is updater.flow_head and name == "weight":
            specs.append(InitSpec("normal", 0.001, "the tracker flow head's trunc_normal(0.001) init"))
        else:
            specs.append(xavier_uniform(shape, "the tracker's update transformer") if name == "weight"
                         else zero("Linear bias (update transformer init)"))
    if ancestors and isinstance(ancestors[-1], nn.MultiheadAttention) and name == "bias":
        specs.append(zero("nn.MultiheadAttention out_proj bias"))
    return specs


def init_specs(model: nn.Module) -> dict[str, list[InitSpec]]:
    """state_dict key -> every init the model's modules may have given it (a meta-device model is enough)."""
    specs: dict[str, list[InitSpec]] = {}

    def visit(module: nn.Module, prefix: str, ancestors: list[nn.Module]) -> None:
        for name, tensor in list(module._parameters.items()) + list(module._buffers.items()):
            if tensor is None:
                continue
            shape = tuple(tensor.shape)
            found = layer_specs(module, name, shape) + ancestor_specs(ancestors, module, name, shape)
            if found:
                specs[prefix + name] = found
        for child_name, child in module._modules.items():
            if child is not None:
                visit(child, f"{prefix}{child_name}.", ancestors + [module])

    visit(model, "", [])
    return specs


@dataclass
class Moments:
    """Raw moments about zero (the mean of every random init here), accumulated in float64."""

    count: int = 0
    total: float = 0.0
    squares: float = 0.0
    fourth: float = 0.0
    max_abs: float = 0.0

    def add(self, chunk: torch.Tensor, scratch: torch.Tensor) -> None:
        """Accumulate one float64 chunk (`scratch`: a float64 buffer at least as long, overwritten)."""
        squared = torch.mul(chunk, chunk, out=scratch[:chunk.numel()])
        self.count += chunk.numel()
        self.total += float(chunk.sum())
        self.squares += float(squared.sum())
        self.max_abs = max(self.max_abs, float(squared.max()) ** 0.5)
        self.fourth += float(squared.square_().sum())

    @property
    def mean(self) -> float:
        return self.total / self.count

    @property
    def std(self) -> float:
        """Root mean square, which is the std under an init's zero mean."""
        return math.sqrt(self.squares / self.count)

    @property
    def kurtosis(self) -> float:
        second = self.squares / self.count
        return self.fourth / self.count / (second * second) if second > 0 else math.inf


def kurtosis_standard_error(kind: str, count: int) -> float:
    """Asymptotic standard error of m4 / m2^2 for `count` draws of a zero-mean init (delta method)."""
    k4, k6, k8 = SHAPE_MOMENTS[kind]
    variance = (k8 - k4 * k4) - 4 * k4 * (k6 - k4) + 4 * k4 * k4 * (k4 - 1)
    return math.sqrt(variance / count)


def matches_random(moments: Moments, spec: InitSpec, slack: float) -> bool:
    """Whether mean, std, kurtosis (and a uniform's support) are all what a fresh draw of this size gives."""
    n, sigma = moments.count, spec.std
    kurtosis = SHAPE_MOMENTS[spec.kind][0]
    if sigma <= 0 or abs(moments.mean) > Z_SCORE * sigma / math.sqrt(n):
        return False
    if abs(moments.std / sigma - 1) > Z_SCORE * math.sqrt((kurtosis - 1) / (4 * n)) + slack:
        return False
    if abs(moments.kurtosis - kurtosis) > Z_SCORE * kurtosis_standard_error(spec.kind, n):
        return False
    if spec.kind == "uniform":
        bound = spec.scale
        return bound * (1 - min(1.0, EDGE_FILL / n)) <= moments.max_abs <= bound * (1 + slack)
    return True


def chunks(tensor: torch.Tensor) -> Iterator[torch.Tensor]:
    """The tensor's values as consecutive flat chunks (views where the tensor is contiguous)."""
    flat = tensor.detach().reshape(-1)
    for start in range(0, flat.numel(), CHUNK_VALUES):
        yield flat[start:start + CHUNK_VALUES]


def is_constant(tensor: torch.Tensor, value: float) -> bool:
    """Every value equals `value` exactly, compared in the tensor's dtype (stops at the first chunk that differs)."""
    target = torch.tensor(value, dtype=tensor.dtype)
    return all(bool((chunk == target).all()) for chunk in chunks(tensor))


def describe_constant(spec: InitSpec) -> str:
    return f"every value is {spec.scale:g}: {spec.name}"


def describe_random(moments: Moments, spec: InitSpec) -> str:
    """The numbers that matched, for a person to judge."""
    if spec.kind == "uniform":
        return (f"std {moments.std:.4g}, kurtosis {moments.kurtosis:.2f}, every value within ±{spec.scale:.4g} "
                f"(max |x| {moments.max_abs:.4g}): matches {spec.name}")
    return (f"std {moments.std:.4g} (init {spec.scale:g}), mean {moments.mean:.2g}, kurtosis "
            f"{moments.kurtosis:.2f}: matches {spec.name}")


def untrained_match(tensor: torch.Tensor, specs: list[InitSpec]) -> tuple[InitSpec, str] | None:
    """The init this tensor's data matches and the reason, or None (one streamed pass at most)."""
    if tensor.is_meta or not tensor.is_floating_point() or tensor.numel() == 0:
        return None
    with torch.no_grad():
        for spec in specs:
            if spec.kind == "constant" and is_constant(tensor, spec.scale):
                return spec, describe_constant(spec)
        candidates = [spec for spec in specs if spec.kind != "constant"]
        if not candidates or tensor.numel() < MIN_RANDOM_VALUES:
            return None
        slack = torch.finfo(tensor.dtype).eps
        buffer = torch.empty(min(CHUNK_VALUES, tensor.numel()), dtype=torch.float64)
        scratch = torch.empty_like(buffer)
        moments = Moments()
        for index, chunk in enumerate(chunks(tensor)):
            values = buffer[:chunk.numel()]
            values.copy_(chunk)
            moments.add(values, scratch)
            if index == 0 and chunk.numel() >= MIN_RANDOM_VALUES:
                candidates = [spec for spec in candidates if matches_random(moments, spec, slack)]
                if not candidates:
                    return None  # the first chunk alone is no draw from any of them: most trained tensors stop here
        for spec in candidates:
            if matches_random(moments, spec, slack):
                return spec, describe_random(moments, spec)
    return None


def init_verdict(tensor: torch.Tensor, specs: list[InitSpec]) -> bool | None:
    """Whether the values match one of the inits (True), match none of those the detector can judge (False), or
    cannot be judged at all (None: no init known, no data, or too few values for a random init alone)."""
    if not specs or tensor.is_meta or not tensor.is_floating_point() or tensor.numel() == 0:
        return None
    if untrained_match(tensor, specs) is not None:
        return True
    judged = any(spec.kind == "constant" for spec in specs) or tensor.numel() >= MIN_RANDOM_VALUES
    return False if judged else None


def named_items(tensors: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]]):
    """(key, tensor) pairs from a mapping or any iterable of pairs, lazily."""
    return tensors.items() if isinstance(tensors, Mapping) else tensors


def find_untrained(model: nn.Module,
                   tensors: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]]) -> list[Suspicion]:
    """Tensors (key -> data, streamed one at a time) that look like the model's initialisation of that key.

    Keys the model does not have, tensors whose shape differs from the model's, meta tensors (no data) and
    non-floating tensors are skipped. Order follows `tensors`.
    """
    specs = init_specs(model)
    shapes = {key: tuple(value.shape) for key, value in model.state_dict(keep_vars=True).items()}
    found = []
    for key, tensor in named_items(tensors):
        if key not in specs or shapes.get(key) != tuple(tensor.shape):
            continue
        match = untrained_match(tensor, specs[key])
        if match is not None:
            found.append(Suspicion(key=key, numel=tensor.numel(), init=match[0].name, reason=match[1]))
    return found


def find_untrained_in_source(model: nn.Module, source, keys: Iterable[str] | None = None) -> list[Suspicion]:
    """find_untrained over a source opened with data (`open_source(..., with_data=True)`), one tensor at a time,
    in the order of the file's data, with the kernel asked ahead for each tensor's first chunk (all most tensors
    need; read_ahead.py); suspicions in that order."""
    wanted = list(source.tensors) if keys is None else [key for key in keys if key in source.tensors]
    ordered = file_order(source, wanted)
    first_chunk = CHUNK_VALUES * max((info.dtype.itemsize for info in source.tensors.values()), default=4)
    with ReadAhead([source], ordered, bytes_per_key=first_chunk) as read_ahead:

        def streamed():
            for index, key in enumerate(ordered):
                read_ahead.visit(index)
                yield key, source.tensor(key)

        return find_untrained(model, streamed())


def suspects_per_module(suspicions: Iterable[Suspicion]) -> dict[str, dict[str, int]]:
    """Module path ("" is the whole model, as in tree.build_tree) -> {"tensors": n, "parameters": n} of suspects;
    only nodes with at least one suspect appear."""
    counts: dict[str, dict[str, int]] = {}
    for suspicion in suspicions:
        for path in [""] + module_paths(suspicion.key):
            node = counts.setdefault(path, {"tensors": 0, "parameters": 0})
            node["tensors"] += 1
            node["parameters"] += suspicion.numel
    return dict(sorted(counts.items()))
