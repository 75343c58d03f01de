"""Loading VGGT and Pi3 weights into VGGT_MV with full provenance (see report.py for the JSON schema)."""

from vggt_mv.weights.errors import WeightsSourceError
from vggt_mv.weights.loader import build_and_load, load_weights, model_layout
from vggt_mv.weights.report import Anomaly, LoadReport
from vggt_mv.weights.rules import PI3_RULE_SETS

__all__ = ["WeightsSourceError", "build_and_load", "load_weights", "model_layout", "Anomaly", "LoadReport",
           "PI3_RULE_SETS"]
