"""Rule sets as data: TOML or JSON files mapping source keys onto model keys, compiled into `Rule`s.

A rule set file (the built-ins in `rulesets/` use the same format):

    name = "pi3-decoder"                       # optional; defaults to the file name
    description = "..."                        # optional
    [[rules]]
    name = "decoder-even"                      # unique in the file; the report names it "<source>:<name>"
    from = "decoder.{i}.*"                     # `*`: any text (one or more characters); `{i}`: an integer index
    when = "i % 2 == 0"                        # optional condition over the indices
    to = "aggregator.frame_blocks.{i // 2}.*"  # `*` in order; `{expression}` over the indices
    words.stack = { time = "frame" }           # optional: `{stack}` matches these words, the target gets the values
    transform = "name"                         # optional: a transform registered with transforms.register_transform
    optional = false                           # matching nothing is normal (no anomaly)
    alias = false                              # names tensors another spelling names too; that spelling wins
    indexed = true                             # report block index moves (default: the pattern has an index)
    description = "..."                        # shown in reports (default: "from -> to")

    [[rules]]                                  # keys known to have no counterpart in the model
    name = "pi3x-own-modules"
    from = ["metric_token", "metric_decoder.*"]  # one pattern or a list; no `to`, `when`, `words`, `transform`
    not_loaded = true
    description = "..."                        # the report's one anomaly for them says this

Every pattern matches a whole key (`decoder.{i}.*` never matches `pose_inject_blk.0.attn.qkv.weight`), and the
first rule whose target is a model key wins. A `not_loaded` rule applies to the keys no other rule maps: they are
neither loaded nor unexpected, and the report names them in one anomaly (kind "not_loaded_as_expected") per rule.

Expressions are index_expressions' tiny language (never `eval`). Reading TOML needs Python 3.11's tomllib or
the `tomli` package (a dependency on Python 3.10); JSON files hold the same structure.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

from vggt_mv.weights.errors import WeightsSourceError, first_line
from vggt_mv.weights.index_expressions import ExpressionError, compile_expression
from vggt_mv.weights.rules import Rule
from vggt_mv.weights.transforms import get_transform, transform_names

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

BUILTIN_FOLDER = Path(__file__).with_name("rulesets")
BUILTIN_RULE_SETS = ("identity", "pi3-decoder", "pi3-decoder+encoder", "pi3x-decoder", "pi3x-decoder+encoder")
RULE_FILE_SUFFIXES = (".toml", ".json")
MAX_RULE_FILE_BYTES = 1024 * 1024
MAX_RULES = 1000
MAX_PATTERN_CHARS = 500
MAX_NAME_CHARS = 64
TOP_LEVEL_KEYS = {"name", "description", "rules"}
RULE_KEYS = {"name", "from", "to", "when", "words", "transform", "optional", "alias", "indexed", "description",
             "not_loaded"}
NOT_LOADED_KEYS = {"name", "from", "not_loaded", "optional", "description"}
MAX_NOT_LOADED_PATTERNS = 100
PLACEHOLDER = re.compile(r"\{([^{}]*)\}|\*")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
WORD = re.compile(r"[A-Za-z0-9_-]+")
RULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


class RuleFileError(WeightsSourceError):
    """A rules file that cannot be used; one line naming the file, the rule and what is wrong."""


@dataclass(frozen=True)
class RuleSet:
    """Named, ordered rules (the first rule whose target is a model key wins)."""

    name: str
    description: str
    rules: tuple[Rule, ...]

    def for_source(self, source_name: str) -> list[Rule]:
        """The rules named "<source>:<rule>", as reports show them."""
        return [dataclasses.replace(rule, name=f"{source_name}:{rule.name}") for rule in self.rules]


@dataclass(frozen=True)
class _Slot:
    """One `*` or `{name}` of a pattern: its regex group and what it captures."""

    kind: str  # "wild" | "index" | "word"
    name: str | None


def _pattern(text: str, words: dict[str, dict[str, str]], where: str) -> tuple[re.Pattern, list[_Slot]]:
    """The regex of a `from` pattern and its slots, in order."""
    parts, slots, position = [], [], 0
    wildcards = text.count("*")
    for match in PLACEHOLDER.finditer(text):
        parts.append(re.escape(text[position:match.start()]))
        position = match.end()
        if match.group(0) == "*":
            wildcards -= 1
            parts.append("(.+)" if wildcards == 0 else "(.+?)")
            slots.append(_Slot("wild", None))
            continue
        name = match.group(1).strip()
        if not IDENTIFIER.fullmatch(name):
            raise RuleFileError(f"{where}: `from` placeholder {{{match.group(1)}}} must be a name such as {{i}}")
        if any(slot.name == name for slot in slots):
            raise RuleFileError(f"{where}: `from` uses {{{name}}} twice")
        if name in words:
            parts.append("(" + "|".join(re.escape(word) for word in words[name]) + ")")
            slots.append(_Slot("word", name))
        else:
            parts.append(r"(\d+)")
            slots.append(_Slot("index", name))
    parts.append(re.escape(text[position:]))
    return re.compile("".join(parts)), slots


def _target(text: str, slots: list[_Slot], words: dict[str, dict[str, str]], condition: Callable | None,
            where: str) -> Callable[[re.Match], str | None]:
    """The model key a match makes (None when the `when` condition is false)."""
    index_names = {slot.name for slot in slots if slot.kind == "index"}
    wild_groups = [number for number, slot in enumerate(slots, 1) if slot.kind == "wild"]
    pieces: list = []  # str, or a function of (match, indices) -> str
    position, wild_used = 0, 0
    for match in PLACEHOLDER.finditer(text):
        pieces.append(text[position:match.start()])
        position = match.end()
        if match.group(0) == "*":
            if wild_used >= len(wild_groups):
                raise RuleFileError(f"{where}: `to` has more `*` than `from`")
            group = wild_groups[wild_used]
            wild_used += 1
            pieces.append(lambda m, env, group=group: m.group(group))
            continue
        expression = match.group(1).strip()
        word_slot = next((number for number, slot in enumerate(slots, 1)
                          if slot.kind == "word" and slot.name == expression), None)
        if word_slot is not None:
            table = words[expression]
            pieces.append(lambda m, env, group=word_slot, table=table: table[m.group(group)])
            continue
        try:
            evaluate = compile_expression(expression, index_names)
        except ExpressionError as error:
            raise RuleFileError(f"{where}: `to`: {error}") from None
        pieces.append(lambda m, env, evaluate=evaluate: str(int(evaluate(env))))
    pieces.append(text[position:])
    if wild_used != len(wild_groups):
        raise RuleFileError(f"{where}: `to` uses {wild_used} `*` but `from` has {len(wild_groups)}")
    if text == "*" and len(slots) == 1 and condition is None:
        return lambda m: m.group(1)  # identity: the hot path of every checkpoint
    index_groups = [(number, slot.name) for number, slot in enumerate(slots, 1) if slot.kind == "index"]
    pieces = [piece for piece in pieces if piece != ""]

    def target(m: re.Match) -> str | None:
        env = {name: int(m.group(number)) for number, name in index_groups}
        try:
            if condition is not None and not condition(env):
                return None
            return "".join(piece if isinstance(piece, str) else piece(m, env) for piece in pieces)
        except ExpressionError as error:
            raise RuleFileError(f"{where}: key {m.group(0)!r}: {error}") from None

    return target


def _text_field(rule: dict, key: str, where: str, required: bool, limit: int = MAX_PATTERN_CHARS) -> str | None:
    """A string field of a rule, checked."""
    value = rule.get(key)
    if value is None:
        if required:
            raise RuleFileError(f"{where}: needs `{key}`")
        return None
    if not isinstance(value, str) or not value:
        raise RuleFileError(f"{where}: `{key}` must be non-empty text")
    if len(value) > limit:
        raise RuleFileError(f"{where}: `{key}` is {len(value)} characters, over the limit of {limit}")
    return value


def _words(rule: dict, where: str) -> dict[str, dict[str, str]]:
    """The `words` tables: placeholder -> {word in the source key: text in the model key}."""
    words = rule.get("words", {})
    if not isinstance(words, dict):
        raise RuleFileError(f"{where}: `words` must be a table of placeholder -> {{word = replacement}}")
    for name, table in words.items():
        if not IDENTIFIER.fullmatch(name) or not isinstance(table, dict) or not table:
            raise RuleFileError(f"{where}: `words.{name}` must be a non-empty table of word = replacement")
        for word, replacement in table.items():
            if not WORD.fullmatch(word) or not isinstance(replacement, str) or not WORD.fullmatch(replacement):
                raise RuleFileError(f"{where}: `words.{name}`: {word!r} = {replacement!r} must be words "
                                    "(letters, digits, '_', '-')")
    return words


def _flag(rule: dict, flag: str, where: str) -> bool | None:
    """A true/false field of a rule (None when absent)."""
    value = rule.get(flag)
    if value is not None and not isinstance(value, bool):
        raise RuleFileError(f"{where}: `{flag}` must be true or false")
    return value


def compile_not_loaded_rule(rule: dict, name: str, where: str) -> Rule:
    """A `not_loaded = true` entry: its `from` patterns (one, or a list) as one Rule that maps nothing."""
    unknown = sorted(set(rule) - NOT_LOADED_KEYS)
    if unknown:
        raise RuleFileError(f"{where}: a not_loaded rule maps nothing, so it takes no {unknown[0]!r}; fields: "
                            f"{', '.join(sorted(NOT_LOADED_KEYS))}")
    patterns = rule.get("from")
    patterns = [patterns] if isinstance(patterns, str) else patterns
    if not isinstance(patterns, list) or not patterns or len(patterns) > MAX_NOT_LOADED_PATTERNS:
        raise RuleFileError(f"{where}: `from` must be a pattern or a list of 1 to {MAX_NOT_LOADED_PATTERNS} patterns")
    for pattern in patterns:
        _text_field({"from": pattern}, "from", where, True)
    compiled = [_pattern(pattern, {}, where)[0].pattern for pattern in patterns]
    description = _text_field(rule, "description", where, False) or f"{', '.join(patterns)}: not loaded"
    return Rule(name, re.compile("|".join(f"(?:{regex})" for regex in compiled)), lambda match: None, description,
                optional=bool(_flag(rule, "optional", where)), not_loaded=True)


def compile_rule(rule: object, where: str) -> Rule:
    """One `[[rules]]` entry as a Rule."""
    if not isinstance(rule, dict):
        raise RuleFileError(f"{where}: must be a table (TOML) or an object (JSON)")
    unknown = sorted(set(rule) - RULE_KEYS)
    if unknown:
        raise RuleFileError(f"{where}: unknown field {unknown[0]!r}; fields: {', '.join(sorted(RULE_KEYS))}")
    name = _text_field(rule, "name", where, True, MAX_NAME_CHARS)
    if not RULE_NAME.fullmatch(name):
        raise RuleFileError(f"{where}: name {name!r}: letters, digits, '_', '.', '+', '-'")
    where = f"{where} ({name!r})"
    if _flag(rule, "not_loaded", where):
        return compile_not_loaded_rule(rule, name, where)
    source, target = _text_field(rule, "from", where, True), _text_field(rule, "to", where, True)
    words = _words(rule, where)
    pattern, slots = _pattern(source, words, where)
    unused_words = sorted(set(words) - {slot.name for slot in slots})
    if unused_words:
        raise RuleFileError(f"{where}: `words.{unused_words[0]}` names no placeholder of `from`")
    condition_text = _text_field(rule, "when", where, False, 200)
    condition = None
    if condition_text is not None:
        try:
            condition = compile_expression(condition_text, {s.name for s in slots if s.kind == "index"})
        except ExpressionError as error:
            raise RuleFileError(f"{where}: `when`: {error}") from None
    flags = {flag: _flag(rule, flag, where) for flag in ("optional", "alias", "indexed")}
    transform_name = _text_field(rule, "transform", where, False, MAX_NAME_CHARS)
    transform = None
    if transform_name is not None:
        transform = get_transform(transform_name)
        if transform is None:
            known = ", ".join(transform_names()) or "none is registered"
            raise RuleFileError(f"{where}: unknown transform {transform_name!r} ({known}); register it with "
                                "vggt_mv.weights.transforms.register_transform before loading")
    description = _text_field(rule, "description", where, False) or (
        f"{source} -> {target}" + (f" when {condition_text}" if condition_text else ""))
    has_index = any(slot.kind == "index" for slot in slots)
    return Rule(name, pattern, _target(target, slots, words, condition, where), description,
                transform=transform.function if transform else None,
                transformed_shape=transform.shape if transform else None,
                indexed=has_index if flags["indexed"] is None else flags["indexed"],
                optional=bool(flags["optional"]), is_alias=bool(flags["alias"]))


def parse_rule_set(data: object, origin: str, default_name: str) -> RuleSet:
    """A decoded rules file (dict) as a RuleSet; `origin` names the file in messages."""
    if not isinstance(data, dict):
        raise RuleFileError(f"{origin}: a rules file is a table with a `rules` list")
    unknown = sorted(set(data) - TOP_LEVEL_KEYS)
    if unknown:
        raise RuleFileError(f"{origin}: unknown top-level field {unknown[0]!r}; fields: name, description, rules")
    rules = data.get("rules")
    if not isinstance(rules, list) or not rules:
        raise RuleFileError(f"{origin}: needs a non-empty `rules` list ([[rules]] tables in TOML)")
    if len(rules) > MAX_RULES:
        raise RuleFileError(f"{origin}: {len(rules)} rules, over the limit of {MAX_RULES}")
    name = data.get("name", default_name)
    description = data.get("description", "")
    if not isinstance(name, str) or not isinstance(description, str):
        raise RuleFileError(f"{origin}: `name` and `description` must be text")
    compiled = [compile_rule(rule, f"{origin}: rule {number}") for number, rule in enumerate(rules, 1)]
    names = [rule.name for rule in compiled]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise RuleFileError(f"{origin}: two rules are named {duplicate!r}")
    return RuleSet(name[:MAX_NAME_CHARS], description[:MAX_PATTERN_CHARS], tuple(compiled))


def read_rule_file(path: Path) -> RuleSet:
    """A `.toml` or `.json` rules file, size-limited, as a RuleSet."""
    if path.suffix not in RULE_FILE_SUFFIXES:
        raise RuleFileError(f"{path}: a rules file ends in .toml or .json")
    try:
        size = path.stat().st_size
        if size > MAX_RULE_FILE_BYTES:
            raise RuleFileError(f"{path}: rules file of {size:,} bytes, over the limit of {MAX_RULE_FILE_BYTES:,}")
        raw = path.read_bytes()
    except OSError as error:
        raise RuleFileError(f"{path}: cannot read the rules file ({error.strerror or first_line(error)})") from None
    try:
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
    except RecursionError:
        raise RuleFileError(f"{path}: rules file nested too deeply") from None
    except (ValueError, tomllib.TOMLDecodeError) as error:  # decode errors of TOML, JSON and UTF-8
        raise RuleFileError(f"{path}: not a valid {path.suffix[1:].upper()} rules file ({first_line(error)})") from None
    return parse_rule_set(data, str(path), path.stem)


@lru_cache(maxsize=None)
def builtin_rule_set(name: str) -> RuleSet:
    """One of BUILTIN_RULE_SETS, read from the package (cached: they never change)."""
    if name not in BUILTIN_RULE_SETS:
        raise RuleFileError(f"unknown rule set {name!r}; built-in: {', '.join(BUILTIN_RULE_SETS)}")
    return read_rule_file(BUILTIN_FOLDER / f"{name}.toml")


def load_rule_set(spec: "str | Path | RuleSet") -> RuleSet:
    """A RuleSet from a built-in name, a rules file path, or a RuleSet itself."""
    if isinstance(spec, RuleSet):
        return spec
    if isinstance(spec, str) and spec in BUILTIN_RULE_SETS:
        return builtin_rule_set(spec)
    path = Path(spec).expanduser()
    if path.suffix in RULE_FILE_SUFFIXES and path.is_file():
        return read_rule_file(path)
    raise RuleFileError(f"unknown rule set {str(spec)!r}: give one of {', '.join(BUILTIN_RULE_SETS)} or an existing "
                        ".toml/.json rules file")
