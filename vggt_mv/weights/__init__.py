"""Loading weights into VGGT_MV (or any model) from named sources by rule sets, with full provenance (see
report.py for the JSON schema, rule_files.py for the rules format)."""

from vggt_mv.weights.errors import WeightsSourceError
from vggt_mv.weights.loader import build_and_load, load_weights, model_layout
from vggt_mv.weights.report import Anomaly, CoverageError, LoadReport
from vggt_mv.weights.rule_files import BUILTIN_RULE_SETS, RuleFileError, load_rule_set
from vggt_mv.weights.rules import PI3_RULE_SETS
from vggt_mv.weights.source_specs import SourceSpec
from vggt_mv.weights.transforms import register_transform

__all__ = ["WeightsSourceError", "build_and_load", "load_weights", "model_layout", "Anomaly", "CoverageError",
           "LoadReport", "BUILTIN_RULE_SETS", "RuleFileError", "load_rule_set", "PI3_RULE_SETS", "SourceSpec",
           "register_transform"]
