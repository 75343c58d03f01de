"""Compare two checkpoints tensor by tensor and per module: relative change ||a - b|| / ||b||, what is unchanged,
and whether an unchanged module was frozen after training or never trained at all.

Two sources (anything `open_source` accepts, each with a role name such as "a" and "b") are streamed a few
matching tensors at a time (one per worker thread) from their memory maps, in float64 chunks of `CHUNK_VALUES`
values (a big tensor never needs a float64 copy of itself), in file order with the kernel reading ahead, so the
cost is about that of reading both files and the memory beyond the page cache is a few buffers. A module's
figure is over all its compared tensors: sqrt(sum ||a - b||^2) / sqrt(sum ||b||^2). A module whose compared
tensors are all exactly equal is `unchanged`, and its `unchanged_kind` says which of two findings that is:
"frozen" (equal, and trained: some equal tensor matches no init) or "never_trained" (equal, and every equal tensor
the detector can judge still holds its init in both), by the untrained-tensor check (untrained.py) run on both
sides' data of every unchanged tensor, against the inits of the VGGT_MV config the headers fit (compare_inits.py).

`Comparison.to_dict()` (schema_version 2), strict JSON (no NaN/Infinity):

    {"schema_version": 2,
     "a": {"role", "location", "tensors", "parameters"}, "b": {same},
     "init_reference": "VGGT_MV, the `tiny` preset (read off b's header)" | null (no VGGT_MV header: no verdicts),
     "totals": MODULE (the whole model, path ""),
     "tensors": [{"key", "status", "numel", "shape_a", "shape_b", "dtype_a", "dtype_b",
                  "diff_norm", "ref_norm", "relative_change", "finite", "at_init"}, ...],
     "modules": {path: MODULE, ...},          # every module path above a key, "" included
     "only_a": [key, ...], "only_b": [key, ...], "mismatched": [key, ...]}

    status:  "changed" | "unchanged" (every value equal, compared as float64; dtypes may differ) |
             "mismatched" (shapes differ, or one side is complex and the other not: not compared) |
             "only_a" | "only_b"
    shape_* / dtype_*: null on the side that lacks the key; dtype as torch names it ("torch.float32")
    diff_norm = ||a - b||, ref_norm = ||b||: null unless compared and finite
    relative_change: diff_norm / ref_norm; 0 when both are 0; null when ||b|| = 0 < ||a - b||, or not finite
    finite: false when either side holds NaN or Inf (then only "unchanged" (bitwise equal) or "changed" is known)
    numel: b's element count, a's when only a has the key
    at_init: for an "unchanged" finite tensor, true when both sides' values match the init of that key in the
             reference model (b is checked apart only when stored in another dtype: equal values in one dtype are
             one tensor), false when they match none of the inits the detector can judge (trained values);
             null for every other tensor, and where no verdict is possible (no init known for the key, no
             reference model, or too few values (< 1024) for a random init)

    MODULE = {"module" (its path; never "path", which API clients such as gradio_client take for a file to
              download), "parameters" (b's, else a's, over every key below), "compared_tensors",
              "compared_parameters", "unchanged_tensors", "changed_tensors", "mismatched", "only_a", "only_b",
              "non_finite", "diff_norm", "ref_norm", "relative_change", "unchanged", "at_init_tensors",
              "frozen_tensors", "unchanged_kind"}
    unchanged: true when at least one tensor was compared and every compared tensor is unchanged
    at_init_tensors / frozen_tensors: unchanged tensors whose at_init is true / false
    unchanged_kind: null unless unchanged; then "frozen" (equal, trained: frozen_tensors > 0), else
                    "never_trained" (still at init in both: at_init_tensors > 0), else "unknown" (no tensor of it
                    could be judged)

Changes: version 2 adds `init_reference`, `at_init` per tensor, and `at_init_tensors`, `frozen_tensors`,
`unchanged_kind` per module (version 1 called every unchanged module "frozen, or never trained between the two").
"""

from __future__ import annotations

import math
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import torch

from vggt_mv.weights.compare_inits import InitReference, init_reference
from vggt_mv.weights.read_ahead import ReadAhead, file_order
from vggt_mv.weights.sources import Source, open_source
from vggt_mv.weights.tree import children, collapse_indices, module_paths
from vggt_mv.weights.untrained import InitSpec, init_verdict

SCHEMA_VERSION = 2
# What each finding is called wherever a person reads it (the CLI, the tab's table, the treemap's legend).
FINDINGS = {"changed": "changed", "frozen": "frozen (equal, trained)",
            "never_trained": "still at init in both (never trained)",
            "unknown": "unchanged (not known whether trained)", "not compared": "not compared"}
# torch runs an op on at most this many values on the calling thread (at::internal::GRAIN_SIZE); above it, ops
# (and BLAS dot) fan out to thread pools that spin-wait, which on a busy 2-core machine measured 20-60x slower.
# Parallelism comes from WORKERS Python threads instead, each comparing whole tensors, blocked by the OS not spun.
CHUNK_VALUES = 32768
WORKERS = max(1, min(4, torch.get_num_threads()))


@dataclass(frozen=True)
class SideInfo:
    """One side of a comparison: its role, where it came from, its size."""

    role: str
    location: str
    tensors: int
    parameters: int

    def to_dict(self) -> dict:
        return {"role": self.role, "location": self.location, "tensors": self.tensors, "parameters": self.parameters}


@dataclass(frozen=True)
class TensorChange:
    """One key: how it differs between a and b."""

    key: str
    status: str
    shape_a: tuple[int, ...] | None = None
    shape_b: tuple[int, ...] | None = None
    dtype_a: str | None = None
    dtype_b: str | None = None
    diff_norm: float | None = None
    ref_norm: float | None = None
    finite: bool = True
    at_init: bool | None = None  # unchanged tensors only: both sides still at their init (None: no verdict)

    @property
    def numel(self) -> int:
        """b's element count, a's when only a has the key."""
        shape = self.shape_b if self.shape_b is not None else self.shape_a
        return math.prod(shape) if shape is not None else 0

    @property
    def compared(self) -> bool:
        return self.status in ("changed", "unchanged")

    @property
    def relative_change(self) -> float | None:
        """||a - b|| / ||b||: 0 when both are 0, None when ||b|| is 0 and a differs, or when not computed."""
        return relative(self.diff_norm, self.ref_norm)

    def to_dict(self) -> dict:
        return {"key": self.key, "status": self.status, "numel": self.numel,
                "shape_a": list(self.shape_a) if self.shape_a is not None else None,
                "shape_b": list(self.shape_b) if self.shape_b is not None else None,
                "dtype_a": self.dtype_a, "dtype_b": self.dtype_b, "diff_norm": self.diff_norm,
                "ref_norm": self.ref_norm, "relative_change": self.relative_change, "finite": self.finite,
                "at_init": self.at_init}


def relative(diff_norm: float | None, ref_norm: float | None) -> float | None:
    """diff / ref with the conventions of the schema."""
    if diff_norm is None or ref_norm is None:
        return None
    if ref_norm == 0:
        return 0.0 if diff_norm == 0 else None
    return diff_norm / ref_norm


@dataclass
class ModuleChange:
    """Everything under one module path, aggregated (norms as sums of squares)."""

    path: str
    parameters: int = 0
    compared_tensors: int = 0
    compared_parameters: int = 0
    unchanged_tensors: int = 0
    changed_tensors: int = 0
    mismatched: int = 0
    only_a: int = 0
    only_b: int = 0
    non_finite: int = 0
    diff_squared: float = 0.0
    ref_squared: float = 0.0
    at_init_tensors: int = 0
    frozen_tensors: int = 0

    @property
    def unchanged(self) -> bool:
        """Every compared tensor exactly equal (and at least one compared)."""
        return self.compared_tensors > 0 and self.unchanged_tensors == self.compared_tensors

    @property
    def unchanged_kind(self) -> str | None:
        """For an unchanged module: "frozen" (some equal tensor is trained), "never_trained" (every one judged is
        still at its init in both), "unknown" (none could be judged); None when the module changed."""
        if not self.unchanged:
            return None
        if self.frozen_tensors:
            return "frozen"
        return "never_trained" if self.at_init_tensors else "unknown"

    @property
    def finding(self) -> str:
        """Its FINDINGS key: "changed", "not compared", or the unchanged kind."""
        if self.compared_tensors == 0:
            return "not compared"
        return self.unchanged_kind or "changed"

    @property
    def diff_norm(self) -> float | None:
        return math.sqrt(self.diff_squared) if self.compared_tensors > self.non_finite else None

    @property
    def ref_norm(self) -> float | None:
        return math.sqrt(self.ref_squared) if self.compared_tensors > self.non_finite else None

    @property
    def relative_change(self) -> float | None:
        return relative(self.diff_norm, self.ref_norm)

    def add(self, change: TensorChange) -> None:
        """Count one key under this module."""
        self.parameters += change.numel
        if change.status in ("only_a", "only_b", "mismatched"):
            setattr(self, change.status, getattr(self, change.status) + 1)
            return
        self.compared_tensors += 1
        self.compared_parameters += change.numel
        if change.status == "unchanged":
            self.unchanged_tensors += 1
            self.at_init_tensors += change.at_init is True
            self.frozen_tensors += change.at_init is False
        else:
            self.changed_tensors += 1
        if not change.finite:
            self.non_finite += 1
        else:
            self.diff_squared += change.diff_norm ** 2
            self.ref_squared += change.ref_norm ** 2

    def to_dict(self) -> dict:
        return {"module": self.path, "parameters": self.parameters, "compared_tensors": self.compared_tensors,
                "compared_parameters": self.compared_parameters, "unchanged_tensors": self.unchanged_tensors,
                "changed_tensors": self.changed_tensors, "mismatched": self.mismatched, "only_a": self.only_a,
                "only_b": self.only_b, "non_finite": self.non_finite, "diff_norm": self.diff_norm,
                "ref_norm": self.ref_norm, "relative_change": self.relative_change, "unchanged": self.unchanged,
                "at_init_tensors": self.at_init_tensors, "frozen_tensors": self.frozen_tensors,
                "unchanged_kind": self.unchanged_kind}


@dataclass
class Comparison:
    """The result of comparing a with b: per tensor and per module (path "" is the whole model)."""

    a: SideInfo
    b: SideInfo
    tensors: list[TensorChange]
    modules: dict[str, ModuleChange] = field(default_factory=dict)
    init_reference: str | None = None  # the model whose inits told frozen from never trained (None: no verdicts)

    def keys_with(self, status: str) -> list[str]:
        return [change.key for change in self.tensors if change.status == status]

    @property
    def totals(self) -> ModuleChange:
        return self.modules.get("", ModuleChange(""))

    def to_dict(self) -> dict:
        """The documented JSON schema (module docstring)."""
        return {"schema_version": SCHEMA_VERSION, "a": self.a.to_dict(), "b": self.b.to_dict(),
                "init_reference": self.init_reference, "totals": self.totals.to_dict(),
                "tensors": [change.to_dict() for change in self.tensors],
                "modules": {path: module.to_dict() for path, module in self.modules.items()},
                "only_a": self.keys_with("only_a"), "only_b": self.keys_with("only_b"),
                "mismatched": self.keys_with("mismatched")}


def build_comparison(a: SideInfo, b: SideInfo, changes: list[TensorChange],
                     init_reference: str | None = None) -> Comparison:
    """Aggregate per-tensor changes into every module above them (pure: no data is read here)."""
    modules: dict[str, ModuleChange] = {}
    for change in changes:
        for path in [""] + module_paths(change.key):
            modules.setdefault(path, ModuleChange(path)).add(change)
    return Comparison(a=a, b=b, tensors=changes, modules=dict(sorted(modules.items())), init_reference=init_reference)


def flat_real(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor's values as one flat real view (complex as interleaved real and imaginary parts)."""
    tensor = tensor.detach()
    if tensor.is_complex():
        tensor = torch.view_as_real(tensor)
    return tensor.reshape(-1)


def bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype and the same bytes (NaN included), chunk by chunk."""
    if a.dtype != b.dtype:
        return False
    flat_a, flat_b = a.detach().reshape(-1), b.detach().reshape(-1)
    for start in range(0, flat_a.numel(), CHUNK_VALUES):
        end = start + CHUNK_VALUES
        if not torch.equal(flat_a[start:end].view(torch.uint8), flat_b[start:end].view(torch.uint8)):
            return False
    return True


def squared_norms(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(||a - b||^2, ||b||^2), accumulated in float64 over chunks (two float64 buffers of CHUNK_VALUES)."""
    flat_a, flat_b = flat_real(a), flat_real(b)
    size = min(CHUNK_VALUES, flat_a.numel())
    diff = torch.empty(size, dtype=torch.float64)
    ref = torch.empty(size, dtype=torch.float64)
    diff_squared = ref_squared = 0.0
    for start in range(0, flat_a.numel(), CHUNK_VALUES):
        chunk_a, chunk_b = flat_a[start:start + CHUNK_VALUES], flat_b[start:start + CHUNK_VALUES]
        d, r = diff[:chunk_a.numel()], ref[:chunk_a.numel()]
        d.copy_(chunk_a)
        r.copy_(chunk_b)
        d.sub_(r)
        diff_squared += float(torch.linalg.vector_norm(d)) ** 2  # measured 17% faster than square_().sum()
        ref_squared += float(torch.linalg.vector_norm(r)) ** 2
    return diff_squared, ref_squared


def both_at_init(a: torch.Tensor, b: torch.Tensor, specs: list[InitSpec]) -> bool | None:
    """The untrained check on both sides of an unchanged tensor: True when both still hold their init, False when
    either holds values no init explains, None when neither can be judged. b is read only when a is at init and
    stored in another dtype: equal values in the same dtype are the same tensor, with the same verdict."""
    verdict_a = init_verdict(a, specs)
    if verdict_a is not True or a.dtype == b.dtype:
        return verdict_a
    return init_verdict(b, specs)


def tensor_change(key: str, a: torch.Tensor, b: torch.Tensor, specs: list[InitSpec] | None = None) -> TensorChange:
    """Compare one key's two tensors (shapes and dtypes first, then the values, streamed); an unchanged one is also
    checked against `specs`, the inits its model gives it."""
    sides = dict(shape_a=tuple(a.shape), shape_b=tuple(b.shape), dtype_a=str(a.dtype), dtype_b=str(b.dtype))
    if a.shape != b.shape or a.is_complex() != b.is_complex():
        return TensorChange(key, "mismatched", **sides)
    with torch.no_grad():
        diff_squared, ref_squared = squared_norms(a, b)
        if not (math.isfinite(diff_squared) and math.isfinite(ref_squared)):
            status = "unchanged" if bitwise_equal(a, b) else "changed"
            return TensorChange(key, status, finite=False, **sides)
        at_init = both_at_init(a, b, specs) if diff_squared == 0 and specs else None
    status = "unchanged" if diff_squared == 0 else "changed"
    return TensorChange(key, status, diff_norm=math.sqrt(diff_squared), ref_norm=math.sqrt(ref_squared),
                        at_init=at_init, **sides)


def side_info(source: Source) -> SideInfo:
    return SideInfo(role=source.role, location=source.location, tensors=len(source.tensors),
                    parameters=sum(info.numel for info in source.tensors.values()))


def compare_sources(a: Source, b: Source, on_tensor: Callable[[int, int], None] | None = None,
                    check_init: bool = True) -> Comparison:
    """Compare two sources opened with data; `on_tensor(done, total)` after each matching key (for progress bars).

    Matching keys are read in the order of b's data (sequential reads), with the kernel asked to read ahead
    (read_ahead.py), by WORKERS threads; at most 2 * WORKERS pairs of tensors are held at a time. Each unchanged
    tensor is checked against its init (both sides, while its data is at hand) when `check_init` and the headers
    fit VGGT_MV (compare_inits.py). The result lists b's keys in b's order, then a's keys that b lacks.
    """
    reference: InitReference | None = init_reference(a.tensors, b.tensors, (a.role, b.role)) if check_init else None
    matching = file_order(b, [key for key in b.tensors if key in a.tensors])
    changes: list[TensorChange] = []
    pending: deque[Future] = deque()

    def collect() -> None:
        changes.append(pending.popleft().result())
        if on_tensor is not None:
            on_tensor(len(changes), len(matching))

    with ReadAhead([a, b], matching) as read_ahead, ThreadPoolExecutor(WORKERS) as pool:
        for index, key in enumerate(matching):
            read_ahead.visit(index)
            specs = reference.specs_for(key, b.tensors[key].shape) if reference else None
            pending.append(pool.submit(tensor_change, key, a.tensor(key), b.tensor(key), specs))
            if len(pending) >= 2 * WORKERS:
                collect()
        while pending:
            collect()
    by_key = {change.key: change for change in changes}
    ordered = []
    for key, info in b.tensors.items():
        ordered.append(by_key.get(key) or TensorChange(key, "only_b", shape_b=info.shape, dtype_b=str(info.dtype)))
    ordered += [TensorChange(key, "only_a", shape_a=info.shape, dtype_a=str(info.dtype))
                for key, info in a.tensors.items() if key not in b.tensors]
    return build_comparison(side_info(a), side_info(b), ordered, reference.description if reference else None)


def compare_checkpoints(location_a: str, location_b: str, roles: tuple[str, str] = ("a", "b"),
                        on_tensor: Callable[[int, int], None] | None = None, check_init: bool = True) -> Comparison:
    """Open both locations (local paths or Hub ids, as open_source takes them) with data and compare them.

    Raises WeightsSourceError (one line) when either cannot be opened.
    """
    source_a = open_source(roles[0], location_a, with_data=True)
    source_b = open_source(roles[1], location_b, with_data=True)
    return compare_sources(source_a, source_b, on_tensor, check_init)


def change_band(module: ModuleChange) -> tuple:
    """What must agree for siblings to share one collapsed line: unchanged (and of which kind), or the decade of
    the change, and whether keys are missing on a side, mismatched or not finite."""
    flags = (module.only_a > 0, module.only_b > 0, module.mismatched > 0, module.non_finite > 0)
    if module.compared_tensors == 0:
        return ("not compared",) + flags
    if module.unchanged:
        return ("unchanged", module.unchanged_kind) + flags
    change = module.relative_change
    decade = math.floor(math.log10(change)) if change else None
    return ("changed", decade) + flags


def band_groups(comparison: Comparison, path: str) -> list[tuple[str, list[str]]]:
    """Children of a module, consecutive numeric siblings in the same band merged:
    ("aggregator.frame_blocks.{0..5}", [paths]); others alone (label = path)."""
    groups: list[list[str]] = []
    modules = comparison.modules
    for child in children(modules, path):
        last = child.rsplit(".", 1)[-1]
        if groups and last.isdigit():
            previous = groups[-1][-1]
            if previous.rsplit(".", 1)[-1].isdigit() and change_band(modules[previous]) == change_band(modules[child]):
                groups[-1].append(child)
                continue
        groups.append([child])
    labelled = []
    for members in groups:
        if len(members) == 1:
            labelled.append((members[0], members))
        else:
            parent = members[0].rsplit(".", 1)[0]
            indices = collapse_indices([int(member.rsplit(".", 1)[-1]) for member in members])
            labelled.append((f"{parent}.{indices}", members))
    return labelled


def merged_module(comparison: Comparison, label: str, members: list[str]) -> ModuleChange:
    """The sum of several sibling modules (a collapsed range), so its figure is over all their tensors."""
    merged = ModuleChange(label)
    for member in members:
        module = comparison.modules[member]
        for name in ("parameters", "compared_tensors", "compared_parameters", "unchanged_tensors", "changed_tensors",
                     "mismatched", "only_a", "only_b", "non_finite", "diff_squared", "ref_squared",
                     "at_init_tensors", "frozen_tensors"):
            setattr(merged, name, getattr(merged, name) + getattr(module, name))
    return merged
