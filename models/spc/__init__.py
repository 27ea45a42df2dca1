"""Statistical process control: individuals/moving-range limits, Western Electric/Nelson rules, capability."""

from __future__ import annotations

from models.spc.capability import Capability, CapabilityStats
from models.spc.charts import D2, ImrLimits, imr_limits
from models.spc.rules import RULE_POINTS, nelson_rules

__all__ = ["D2", "RULE_POINTS", "Capability", "CapabilityStats", "ImrLimits", "imr_limits", "nelson_rules"]
