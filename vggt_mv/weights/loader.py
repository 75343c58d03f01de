"""Side effects of a load: put planned tensors into the model without copies, initialise only what stays random."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn as nn

from vggt_mv.model import VGGT_MV
from vggt_mv.weights.errors import WeightsSourceError, first_line
from vggt_mv.weights.meta_build import build_on_meta
from vggt_mv.weights.plan import LoadPlan, plan_load
from vggt_mv.weights.report import LoadReport, dtype_name
from vggt_mv.weights.rule_files import load_rule_set
from vggt_mv.weights.rules import PI3_RULE_SETS
from vggt_mv.weights.source_specs import SourceSpec, source_specs
from vggt_mv.weights.sources import Source, TensorInfo, open_source, shown
from vggt_mv.weights.untrained import Suspicion, find_untrained

logger = logging.getLogger(__name__)


def model_layout(model: nn.Module, dtype: torch.dtype | None = None) -> dict[str, TensorInfo]:
    """{state_dict key: shape and dtype (floating ones as `dtype` if given)}; works on the meta device."""
    def final_dtype(value: torch.Tensor) -> torch.dtype:
        return dtype if dtype is not None and value.is_floating_point() else value.dtype

    return {key: TensorInfo(tuple(value.shape), final_dtype(value)) for key, value in model.state_dict().items()}


def open_sources(specs: list[SourceSpec], with_data: bool) -> list[tuple[Source, list]]:
    """Every requested source with its rules, in loading order (later ones override); every rule set is read
    and checked before any source is opened."""
    rules = [load_rule_set(spec.rules).for_source(spec.name) for spec in specs]
    return [(open_source(spec.name, spec.location, with_data), source_rules) for spec, source_rules in zip(specs, rules)]


def rule_set_name(rules) -> str:
    """How a report names a source's rule set: the built-in's or file's name."""
    return load_rule_set(rules).name


def _owner(model: nn.Module, key: str) -> tuple[nn.Module, str]:
    """The module holding a state_dict entry, and the entry's local name."""
    path, _, name = key.rpartition(".")
    return (model.get_submodule(path) if path else model), name


def _set_tensor(module: nn.Module, name: str, value: torch.Tensor) -> None:
    """Replace a parameter or buffer by `value` itself (no copy into existing storage)."""
    if name in module._parameters:
        requires_grad = module._parameters[name].requires_grad
        module._parameters[name] = nn.Parameter(value, requires_grad=requires_grad)
    else:
        module._buffers[name] = value


def has_own_init(module: nn.Module) -> bool:
    """Whether the module has an init of its own (torch's layers and every VGGT_MV module that owns tensors)."""
    return hasattr(module, "reset_parameters") or hasattr(module, "_reset_parameters")


def _initialise_module(module: nn.Module) -> None:
    """Run the module's own init (it may also re-initialise descendants, as nn.MultiheadAttention does)."""
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
    elif hasattr(module, "_reset_parameters"):
        module._reset_parameters()
    else:
        logger.warning("%s has no reset_parameters; its random tensors use N(0, 0.02)", type(module).__name__)
        for parameter in module.parameters(recurse=False):
            nn.init.normal_(parameter, std=0.02)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


@contextmanager
def only_fresh_tensors_visible(module: nn.Module, path: str, fresh: set[str]):
    """Swap every tensor under `module` that is not freshly materialised for a meta stand-in while an init runs,
    so an init that reaches into descendants can never overwrite loaded (memory-mapped) values."""
    hidden = []
    for sub_path, sub in module.named_modules(prefix=path):
        for table in (sub._parameters, sub._buffers):
            for name, tensor in table.items():
                if tensor is not None and _join(sub_path, name) not in fresh and not tensor.is_meta:
                    hidden.append((table, name, tensor))
                    stand_in = torch.empty_like(tensor, device="meta")
                    table[name] = nn.Parameter(stand_in, tensor.requires_grad) if table is sub._parameters else stand_in
    try:
        yield
    finally:
        for table, name, tensor in hidden:
            table[name] = tensor


def _materialise_random(model: nn.Module, random_keys: list[str], device: torch.device) -> None:
    """Give meta tensors that stay random real storage, then run inits in construction order (children before
    parents, so a parent that re-initialises its descendants has the last word), never touching loaded tensors."""
    fresh: set[str] = set()
    owners: dict[str, nn.Module] = {}
    for key in random_keys:
        module, name = _owner(model, key)
        tensor = module._parameters.get(name, module._buffers.get(name))
        if tensor is not None and tensor.is_meta:
            # Not module.to_empty(): it swaps .data of every parameter of the module in place, loaded ones included.
            _set_tensor(module, name, torch.empty_like(tensor, device=device))
            fresh.add(key)
            owners[key.rpartition(".")[0]] = module
    if not owners:
        return
    with torch.no_grad():
        to_initialise = dict(owners)
        for path in owners:
            parts = path.split(".") if path else []
            for depth in range(len(parts)):
                ancestor_path = ".".join(parts[:depth])
                ancestor = model.get_submodule(ancestor_path) if ancestor_path else model
                if has_own_init(ancestor):
                    to_initialise[ancestor_path] = ancestor
        for path in sorted(to_initialise, key=lambda p: -len(p.split(".")) if p else 0):
            with only_fresh_tensors_visible(to_initialise[path], path, fresh):
                _initialise_module(to_initialise[path])


MAX_NAMED_KEYS = 3


def named_keys(keys: list[str]) -> str:
    """'a', 'b', 'c' and 4 more: enough keys to find the problem, on one line."""
    listed = ", ".join(shown(key) for key in keys[:MAX_NAMED_KEYS])
    return listed + (f" and {len(keys) - MAX_NAMED_KEYS} more" if len(keys) > MAX_NAMED_KEYS else "")


def refuse_unloadable_dtypes(plan: LoadPlan) -> None:
    """A source offering integer, bool or complex tensors for the model's weights is broken or foreign: refuse it
    whole (a dry run lists every such tensor as a dtype mismatch)."""
    rows = [m for m in plan.mismatched if m.reason == "dtype"]
    if not rows:
        return
    first = rows[0]
    location = next(source.location for source in plan.sources if source.role == first.source)
    need = ("weights must be floating point" if first.model_dtype.is_floating_point
            else f"the model's {shown(first.key)} is {dtype_name(first.model_dtype)}")
    more = f" (and {len(rows) - 1} more tensors)" if len(rows) > 1 else ""
    raise WeightsSourceError(f"{location}: tensor {shown(first.source_key)} has dtype "
                             f"{dtype_name(first.source_dtype)}; {need}{more}")


def read_tensor(source: Source, key: str) -> torch.Tensor:
    """One tensor's data, with a read failure (I/O error, file changed since it was opened) as one line."""
    try:
        return source.tensor(key)
    except (OSError, RuntimeError) as error:
        raise WeightsSourceError(f"{source.location}: cannot read tensor {shown(key)} ({first_line(error)})") from None


def is_finite(value: torch.Tensor) -> bool:
    """No NaN and no Inf (reads every value: only a real load calls this).

    A finite sum proves every value finite (NaN and Inf propagate through it) and costs a fraction of an
    element-wise check; only a sum that overflowed or met a NaN/Inf is checked element by element."""
    if not value.is_floating_point():
        return True
    return bool(torch.isfinite(value.sum())) or bool(torch.isfinite(value).all())


def refuse_non_finite(non_finite: dict[str, list[str]], sources: dict[str, Source]) -> None:
    """NaN/Inf weights make every later run fail: name them and load nothing."""
    for role, keys in non_finite.items():
        if keys:
            many = len(keys) > 1
            raise WeightsSourceError(f"{sources[role].location}: {len(keys)} tensor{'s' if many else ''} "
                                     f"hold{'' if many else 's'} NaN or Inf values: {named_keys(keys)}; "
                                     f"refusing to load {'them' if many else 'it'}")


def resolve_loaded_values(plan: LoadPlan, sources: dict[str, Source],
                          dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """Every tensor the plan loads (memory-mapped views where possible), gathered and checked (dtype, shape,
    finite values) before the model is touched, so a source that fails now still leaves the model as it was."""
    refuse_unloadable_dtypes(plan)
    values = {}
    non_finite: dict[str, list[str]] = {role: [] for role in sources}
    for key, assignment in plan.assignments.items():
        source = sources.get(assignment.status)
        if source is None:  # derived or random
            continue
        value = read_tensor(source, assignment.source_key)
        if assignment.rule is not None and assignment.rule.transform is not None:
            value = assignment.rule.transform(value)
        target_dtype = dtype or plan.layout[key].dtype
        if value.dtype != target_dtype and value.is_floating_point():
            value = value.to(target_dtype)
        if tuple(value.shape) != plan.layout[key].shape:  # the header promised this shape: the file changed since
            raise WeightsSourceError(f"{source.location}: tensor {shown(assignment.source_key)} has shape "
                                     f"{list(value.shape)}, its header said {list(plan.layout[key].shape)}")
        if not is_finite(value):
            non_finite[assignment.status].append(assignment.source_key)
        values[key] = value
    refuse_non_finite(non_finite, sources)
    return values


def find_untrained_loaded(model: nn.Module, plan: LoadPlan, sources: dict[str, Source]) -> list[Suspicion]:
    """The loaded tensors whose data looks like their module's init, judged on the values as the source stores
    them (after the rule's transform, before any dtype conversion: a bfloat16 0.01 is no float32 0.01). Run after
    resolve_loaded_values read every value, so the data comes from a warm page cache."""
    def loaded():
        for key, assignment in plan.assignments.items():
            source = sources.get(assignment.status)
            if source is not None:
                value = read_tensor(source, assignment.source_key)
                if assignment.rule is not None and assignment.rule.transform is not None:
                    value = assignment.rule.transform(value)
                yield key, value

    return find_untrained(model, loaded())


def meta_tensor_names(model: nn.Module) -> list[str]:
    """Parameters and buffers still without data (a meta build whose model forgot a non-persistent buffer)."""
    named = list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(remove_duplicate=False))
    return [name for name, tensor in named if tensor is not None and tensor.is_meta]


def apply_plan(model: nn.Module, plan: LoadPlan, sources: dict[str, Source], dtype: torch.dtype | None,
               device: torch.device) -> None:
    """Assign loaded tensors, initialise random ones, copy derived ones, restore non-persistent buffers."""
    values = resolve_loaded_values(plan, sources, dtype)
    with torch.no_grad():
        for key, value in values.items():
            _set_tensor(*_owner(model, key), value)
        random_keys = [key for key, a in plan.assignments.items() if a.status == "random"]
        _materialise_random(model, random_keys, device)
        for key, assignment in plan.assignments.items():
            if assignment.status == "derived":
                source_module, source_name = _owner(model, assignment.source_key)
                _set_tensor(*_owner(model, key), getattr(source_module, source_name).detach().clone())
    if hasattr(model, "init_non_persistent_buffers"):
        model.init_non_persistent_buffers(device)
    left_on_meta = meta_tensor_names(model)
    if left_on_meta:
        raise RuntimeError(f"after loading, {len(left_on_meta)} tensors have no data: {left_on_meta[:5]}; they are "
                           "not in state_dict (non-persistent buffers), so the model's init_non_persistent_buffers() "
                           "must recreate them")


def load_weights(model: nn.Module, checkpoint: str | Path | None = None, pi3: str | Path | None = None,
                 pi3_rules: str = "decoder", dry_run: bool = False, device: str | torch.device | None = None,
                 dtype: torch.dtype | None = None, sources: list | None = None,
                 check_untrained: bool = True) -> LoadReport:
    """Load sources in order over the whole model and report where every tensor came from.

    `checkpoint` (identity rules) and `pi3` (rule set `pi3_rules`) come first, then `sources`: SourceSpecs,
    (name, location[, rules]) tuples or 'NAME=PATH[@RULES]' strings, where rules are a built-in rule set
    (identity, pi3-decoder, pi3-decoder+encoder) or a TOML/JSON rules file; later sources override earlier
    ones, and each tensor's status is its source's name. Sources are local files/folders or Hub repo ids (see
    sources.py). Every source is opened and planned against before the model is touched: a bad source raises
    WeightsSourceError and changes nothing. `dry_run` reads headers only and leaves the model as it is (it may
    stay on the meta device). A real load assigns loaded tensors without copying (memory-mapped), initialises
    the meta tensors that stay `random` with their module's own init (a model that already has data keeps its
    values there), copies `derived` ones, then moves the model to `device` (default: where it was; CPU for a
    meta model) and `dtype` (default: unchanged; the report's per-tensor dtype is the final one).
    `check_untrained` (real loads only) checks every loaded tensor's data against its module's initialisation
    and marks look-alikes `suspect_untrained` in the report (untrained.py; measured 0.8 s for VGGT-1B from a warm
    page cache, about one more read of the data).
    """
    if pi3_rules not in PI3_RULE_SETS:  # refused before reading anything
        raise ValueError(f"unknown Pi3 rule set {pi3_rules!r}; choose one of {', '.join(PI3_RULE_SETS)}")
    specs = source_specs(checkpoint, pi3, pi3_rules, sources)
    opened = open_sources(specs, with_data=not dry_run)
    plan = plan_load(model_layout(model, dtype), opened)
    report = LoadReport.from_plan(plan, dry_run=dry_run, rule_set_names={spec.name: rule_set_name(spec.rules)
                                                                           for spec in specs})
    if dry_run:
        return report
    current = next(iter(model.parameters())).device
    target_device = torch.device(device) if device is not None else (
        torch.device("cpu") if current.type == "meta" else current)
    by_role = {source.role: source for source, _ in opened}
    apply_plan(model, plan, by_role, dtype, torch.device("cpu"))
    if check_untrained:
        report.record_suspects(find_untrained_loaded(model, plan, by_role))
    model.to(device=target_device, dtype=dtype) if dtype is not None else model.to(device=target_device)
    return report


def build_and_load(config, checkpoint: str | Path | None = None, pi3: str | Path | None = None,
                   pi3_rules: str = "decoder", dry_run: bool = False, device: str | torch.device = "cpu",
                   dtype: torch.dtype | None = None, sources: list | None = None, factory=None,
                   check_untrained: bool = True):
    """Build VGGT_MV(config), or `factory()` for any other model, on the meta device and load into it (see
    load_weights); returns (model or None for a dry run, report)."""
    if factory is None:
        def factory():
            return VGGT_MV(config)

    model = build_on_meta(factory)
    if not isinstance(model, nn.Module):
        raise WeightsSourceError(f"the model factory returned {type(model).__name__}, not a torch.nn.Module")
    report = load_weights(model, checkpoint=checkpoint, pi3=pi3, pi3_rules=pi3_rules, dry_run=dry_run,
                          device=device, dtype=dtype, sources=sources, check_untrained=check_untrained)
    if dry_run:
        return None, report
    return model.eval(), report
