"""Which attention pattern a load's weights were trained for, from headers only, and what `auto` makes of it.

A source decides by what it carries, in this order: the metadata save_checkpoint writes (its recorded mode);
VGGT_MV's extension tensors (spatial mask head, memory tokens, dual-stream blocks and lambdas: trained as
VGGT_MV, multi-view); attention blocks without either (a plain VGGT or Pi3 checkpoint: global attention over all
frames). A source with none of these (a heads-only fine-tune) leaves the attention as earlier sources made it, so
it does not decide. Sources are read in loading order and the last that decides wins, as later sources override
earlier ones in the load.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vggt_mv.aggregator import STREAM_STACKS
from vggt_mv.weights.checkpoint_writer import FORMAT_KEY, TRAINED_ATTENTION_KEY, TRAINED_ATTENTION_MODES
from vggt_mv.weights.errors import WeightsSourceError
from vggt_mv.weights.source_specs import SourceSpec, as_spec
from vggt_mv.weights.sources import Source, check_metadata, decode_json, open_source, read_header_bytes, shown

# Key prefixes of VGGT_MV's extension tensors (see aggregator.py): one family each, as a reason names them.
EXTENSION_PREFIXES = (("aggregator.spatial_mask_head.", "aggregator.memory_tokens")
                      + tuple(f"aggregator.{stack}." for stack in STREAM_STACKS)
                      + ("aggregator.lambda_pose_logit", "aggregator.lambda_geo_logit"))
VGGT_ATTENTION_PREFIXES = ("aggregator.frame_blocks.", "aggregator.global_blocks.", "aggregator.time_blocks.",
                           "aggregator.view_blocks.")
PI3_ATTENTION_PREFIX = "decoder."
MODE_TRAINING = {"multi": "multi-view", "global": "global-attention", "single": "single-view"}
MAX_NAMED_FAMILIES = 3
RANDOM_REASON = "random weights: trained for nothing"
NEEDS_VGGT_MV = "multi-view attention needs VGGT_MV-trained weights"


@dataclass(frozen=True)
class TrainedAttention:
    """The attention mode a load's weights were trained for (None: random weights) and why, in one line."""

    mode: str | None
    reason: str

    def __post_init__(self) -> None:
        """Only a mode a model can be trained with, or None."""
        if self.mode is not None and self.mode not in TRAINED_ATTENTION_MODES:
            raise ValueError(f"mode must be one of {', '.join(TRAINED_ATTENTION_MODES)} or None, got {self.mode!r}")


@dataclass(frozen=True)
class ModeChoice:
    """The attention mode `auto` runs and why, in one line a visitor reads."""

    mode: str
    reason: str


def safetensors_metadata(path: Path) -> dict[str, str]:
    """A safetensors file's `__metadata__` (empty when it has none), read and checked by the sources' own parser."""
    raw, _ = read_header_bytes(path)
    header = decode_json(raw, "safetensors header", path)
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    check_metadata(path, metadata)
    return metadata or {}


def vggt_mv_metadata(source: Source) -> dict[str, str] | None:
    """The metadata save_checkpoint wrote into one of the source's files, or None (another writer, or a torch file)."""
    if source.format != "safetensors":
        return None
    for path in source.files:
        metadata = safetensors_metadata(path)
        if FORMAT_KEY in metadata:
            return metadata
    return None


def recorded_mode(source: Source, metadata: dict[str, str]) -> str:
    """The trained attention mode save_checkpoint recorded; a hand-edited or foreign value is refused."""
    mode = metadata.get(TRAINED_ATTENTION_KEY)
    if mode not in TRAINED_ATTENTION_MODES:
        raise WeightsSourceError(f"{source.location}: metadata {TRAINED_ATTENTION_KEY} is {shown(mode)}, not one of "
                                 f"{', '.join(TRAINED_ATTENTION_MODES)}")
    return mode


def extension_families(keys: Sequence[str]) -> list[str]:
    """The families of VGGT_MV extension tensors among `keys`, named as `prefix*` (or the tensor's own name)."""
    found = [prefix for prefix in EXTENSION_PREFIXES if any(key.startswith(prefix) for key in keys)]
    return [prefix + "*" if prefix.endswith(".") else prefix for prefix in found]


def named_families(families: list[str]) -> str:
    """'a, b, c and 2 more': the families on one line."""
    listed = ", ".join(families[:MAX_NAMED_FAMILIES])
    return listed + (f" and {len(families) - MAX_NAMED_FAMILIES} more" if len(families) > MAX_NAMED_FAMILIES else "")


def source_verdict(source: Source) -> TrainedAttention | None:
    """What one opened source says about the attention it was trained for, or None when it carries no attention
    weights and so does not decide."""
    metadata = vggt_mv_metadata(source)
    if metadata is not None:
        mode = recorded_mode(source, metadata)
        return TrainedAttention(mode, f"{source.location} was saved by save_checkpoint with {MODE_TRAINING[mode]} "
                                      "training (metadata)")
    keys = list(source.tensors)
    families = extension_families(keys)
    if families:
        return TrainedAttention("multi", f"{source.location} carries VGGT_MV's extension tensors "
                                         f"({named_families(families)}): trained as VGGT_MV, multi-view")
    if any(key.startswith(VGGT_ATTENTION_PREFIXES) for key in keys):
        kind = "a plain VGGT"
    elif any(key.startswith(PI3_ATTENTION_PREFIX) for key in keys):
        kind = "a Pi3"
    else:
        return None
    return TrainedAttention("global", f"{source.location} is {kind} checkpoint (no VGGT_MV tensors or metadata): "
                                      "trained for global attention over all frames")


def source_location(item: SourceSpec | tuple | str | Path) -> tuple[str, str | Path]:
    """(role, location) of one source as the loader takes it: a path or repo id, a SourceSpec or a (name, location
    [, rules]) tuple."""
    if isinstance(item, (str, Path)):
        return "source", item
    spec = as_spec(item)
    return spec.name, spec.location


def trained_attention_of(sources: Sequence[SourceSpec | tuple | str | Path]) -> TrainedAttention:
    """What the weights of a load from `sources` (in loading order) were trained for, from headers only, so the app
    and the CLI can let `auto` follow the weights; a bad source raises WeightsSourceError."""
    if isinstance(sources, (str, Path)):
        raise TypeError(f"sources is a list of sources in loading order, got one {type(sources).__name__}: "
                        f"write [{str(sources)!r}]")
    if not sources:
        return TrainedAttention(None, RANDOM_REASON)
    opened = [open_source(*source_location(item)) for item in sources]  # every source checked before any verdict
    deciding = [verdict for verdict in map(source_verdict, opened) if verdict is not None]
    if not deciding:
        what = (f"{opened[0].location} carries no" if len(opened) == 1
                else f"none of the {len(opened)} sources carries")
        return TrainedAttention(None, f"{what} attention weights: the attention blocks stay random, trained for "
                                      "nothing")
    last = deciding[-1]
    if len(opened) == 1:
        return last
    return TrainedAttention(last.mode, f"{last.reason}; {which_decides(len(deciding), len(opened))}")


def which_decides(deciding: int, given: int) -> str:
    """Why this source's verdict is the load's, when several sources were given."""
    if deciding == 1:
        return f"the only one of the {given} sources that decides"
    if deciding == given:
        return f"the last of the {given} sources, so it overrides the earlier ones"
    return f"the last of the {deciding} of {given} sources that decide, so it overrides the earlier ones"


def choose_auto_mode(trained: TrainedAttention, cameras: int) -> ModeChoice:
    """The mode `auto` runs for `cameras` cameras: single-view for one (exactly VGGT), multi-view only for weights
    trained for it, global otherwise (what plain VGGT weights, and random ones, are fit for)."""
    if isinstance(cameras, bool) or not isinstance(cameras, int) or cameras < 1:
        raise ValueError(f"cameras must be a positive integer, got {cameras!r}")
    if cameras == 1:
        return ModeChoice("single", "auto chose single: one camera, so the model runs exactly as VGGT, whatever the "
                                    "weights")
    if trained.mode == "multi":
        return ModeChoice("multi", f"auto chose multi for {cameras} cameras: {trained.reason}")
    return ModeChoice("global", f"auto chose global for {cameras} cameras: {trained.reason} ({NEEDS_VGGT_MV})")
