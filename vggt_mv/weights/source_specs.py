"""What a caller asks to load: named sources in order, each a location and a rule set.

`SourceSpec("checkpoint", "facebook/VGGT-1B", "identity")`, or the CLI's `NAME=PATH[@RULES]`. A source's name
becomes the status of every tensor it loads, so it is short, plain and never a statuses' own word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vggt_mv.weights.errors import WeightsSourceError
from vggt_mv.weights.rule_files import BUILTIN_RULE_SETS, RULE_FILE_SUFFIXES, RuleSet
from vggt_mv.weights.rules import pi3_rule_set_name
from vggt_mv.weights.sources import shown

SOURCE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
RESERVED_NAMES = ("derived", "random")
DEFAULT_RULES = {"checkpoint": "identity", "pi3": "pi3-decoder"}


@dataclass(frozen=True)
class SourceSpec:
    """One source to load: its name (the status of what it loads), where it is, and its rule set."""

    name: str
    location: str | Path
    rules: str | Path | RuleSet = "identity"


def check_source_name(name: object) -> str:
    """A source name fit for a status, a table and a colour key: 1..32 of [A-Za-z0-9_-], starting with a letter."""
    if not isinstance(name, str) or not SOURCE_NAME.fullmatch(name):
        raise WeightsSourceError(f"source name {shown(name)}: 1 to 32 letters, digits, '_' or '-', starting with a "
                                 "letter")
    if name in RESERVED_NAMES:
        raise WeightsSourceError(f"source name {name!r} is a status of its own ({', '.join(RESERVED_NAMES)}); "
                                 "choose another")
    return name


def parse_source_spec(text: str) -> SourceSpec:
    """`NAME=PATH[@RULES]`: RULES is a built-in rule set or a .toml/.json file (default: identity)."""
    name, equals, rest = text.partition("=")
    if not equals or not rest:
        raise WeightsSourceError(f"source {shown(text)}: write NAME=PATH[@RULES], e.g. ft=runs/last.safetensors")
    location, rules = rest, "identity"
    head, at, tail = rest.rpartition("@")
    if at and head and (tail in BUILTIN_RULE_SETS or tail.endswith(RULE_FILE_SUFFIXES)):
        location, rules = head, tail
    return SourceSpec(check_source_name(name.strip()), location, rules)


def as_spec(item: "SourceSpec | tuple | str") -> SourceSpec:
    """A SourceSpec from itself, (name, location[, rules]) or `NAME=PATH[@RULES]`."""
    if isinstance(item, SourceSpec):
        spec = item
    elif isinstance(item, str):
        spec = parse_source_spec(item)
    elif isinstance(item, tuple) and len(item) in (2, 3):
        spec = SourceSpec(*item) if len(item) == 3 else SourceSpec(item[0], item[1],
                                                                     DEFAULT_RULES.get(item[0], "identity"))
    else:
        raise WeightsSourceError(f"a source is a SourceSpec, (name, location[, rules]) or 'NAME=PATH[@RULES]', got "
                                 f"{shown(item)}")
    check_source_name(spec.name)
    return spec


def source_specs(checkpoint=None, pi3=None, pi3_rules: str = "decoder", sources=None) -> list[SourceSpec]:
    """Every source in loading order: `checkpoint` (identity), `pi3` (by its rule set), then `sources`; names unique."""
    specs = []
    if checkpoint is not None:
        specs.append(SourceSpec("checkpoint", checkpoint, "identity"))
    if pi3 is not None:
        specs.append(SourceSpec("pi3", pi3, pi3_rule_set_name(pi3_rules)))
    specs += [as_spec(item) for item in sources or []]
    names = [spec.name for spec in specs]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate:
        raise WeightsSourceError(f"two sources are named {duplicate!r}; every source needs its own name")
    return specs
