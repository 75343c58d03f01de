"""Side effects of a load: put planned tensors into the model without copies, initialise only what stays random."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn as nn

from vggt_mv.weights.plan import LoadPlan, plan_load
from vggt_mv.weights.report import LoadReport
from vggt_mv.weights.rules import checkpoint_rules, pi3_rules
from vggt_mv.weights.sources import Source, TensorInfo, open_source

logger = logging.getLogger(__name__)


def model_layout(model: nn.Module) -> dict[str, TensorInfo]:
    """{state_dict key: shape and dtype}; works on the meta device without touching data."""
    return {key: TensorInfo(tuple(value.shape), value.dtype) for key, value in model.state_dict().items()}


def open_sources(checkpoint, pi3, pi3_rule_set: str, with_data: bool) -> list[tuple[Source, list]]:
    """Every requested source with its rules, in loading order (checkpoint first, Pi3 overrides)."""
    rules_for_pi3 = pi3_rules(pi3_rule_set)  # validate the rule set before reading anything
    opened = []
    if checkpoint is not None:
        opened.append((open_source("checkpoint", checkpoint, with_data), checkpoint_rules()))
    if pi3 is not None:
        opened.append((open_source("pi3", pi3, with_data), rules_for_pi3))
    return opened


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


def _initialise_module(module: nn.Module) -> None:
    """Run the module's own init for its direct tensors (every module of VGGT_MV has one)."""
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
    elif hasattr(module, "_reset_parameters"):
        module._reset_parameters()
    else:
        logger.warning("%s has no reset_parameters; its random tensors use N(0, 0.02)", type(module).__name__)
        for parameter in module.parameters(recurse=False):
            nn.init.normal_(parameter, std=0.02)


def _materialise_random(model: nn.Module, random_keys: list[str], device: torch.device) -> None:
    """Give meta tensors that stay random real storage and their module's init, keeping loaded siblings."""
    owners: dict[int, tuple[nn.Module, list[str]]] = {}
    for key in random_keys:
        module, name = _owner(model, key)
        tensor = module._parameters.get(name, module._buffers.get(name))
        if tensor is not None and tensor.is_meta:
            owners.setdefault(id(module), (module, []))[1].append(name)
    with torch.no_grad():
        for module, _ in owners.values():
            kept = {name: tensor for name, tensor in list(module._parameters.items()) + list(module._buffers.items())
                    if tensor is not None and not tensor.is_meta}
            module.to_empty(device=device, recurse=False)
            _initialise_module(module)
            for name, tensor in kept.items():
                _set_tensor(module, name, tensor)


def apply_plan(model: nn.Module, plan: LoadPlan, sources: dict[str, Source], dtype: torch.dtype | None,
               device: torch.device) -> None:
    """Assign loaded tensors, copy derived ones, initialise random ones, restore non-persistent buffers."""
    with torch.no_grad():
        for key, assignment in plan.assignments.items():
            if assignment.status not in ("checkpoint", "pi3"):
                continue
            module, name = _owner(model, key)
            value = sources[assignment.status].tensor(assignment.source_key)
            if assignment.rule is not None and assignment.rule.transform is not None:
                value = assignment.rule.transform(value)
            target_dtype = dtype or plan.layout[key].dtype
            if value.dtype != target_dtype and value.is_floating_point():
                value = value.to(target_dtype)
            _set_tensor(module, name, value)
        random_keys = [key for key, a in plan.assignments.items() if a.status == "random"]
        _materialise_random(model, random_keys, device)
        for key, assignment in plan.assignments.items():
            if assignment.status == "derived":
                module, name = _owner(model, key)
                source_module, source_name = _owner(model, assignment.source_key)
                _set_tensor(module, name, getattr(source_module, source_name).detach().clone())
    if hasattr(model, "init_non_persistent_buffers"):
        model.init_non_persistent_buffers(device)


def load_weights(model: nn.Module, checkpoint: str | Path | None = None, pi3: str | Path | None = None,
                 pi3_rules: str = "decoder", dry_run: bool = False, device: str | torch.device | None = None,
                 dtype: torch.dtype | None = None) -> LoadReport:
    """Load the VGGT checkpoint over the whole model, then Pi3 by rules; report where every tensor came from.

    A bad source raises WeightsSourceError before the model is touched. With dry_run only headers are read.
    """
    sources = open_sources(checkpoint, pi3, pi3_rules, with_data=not dry_run)
    plan = plan_load(model_layout(model), sources)
    report = LoadReport.from_plan(plan, dry_run=dry_run)
    if dry_run:
        return report
    current = next(iter(model.parameters())).device
    target_device = torch.device(device) if device is not None else (
        torch.device("cpu") if current.type == "meta" else current)
    apply_plan(model, plan, {source.role: source for source, _ in sources}, dtype, torch.device("cpu"))
    model.to(device=target_device, dtype=dtype) if dtype is not None else model.to(device=target_device)
    return report


def build_and_load(config, checkpoint: str | Path | None = None, pi3: str | Path | None = None,
                   pi3_rules: str = "decoder", dry_run: bool = False, device: str | torch.device = "cpu",
                   dtype: torch.dtype | None = None):
    """Build VGGT_MV on the meta device and load into it; returns (model or None for a dry run, report)."""
    from vggt_mv.model import VGGT_MV

    with torch.device("meta"):
        model = VGGT_MV(config)
    report = load_weights(model, checkpoint=checkpoint, pi3=pi3, pi3_rules=pi3_rules, dry_run=dry_run,
                          device=device, dtype=dtype)
    if dry_run:
        return None, report
    return model.eval(), report
