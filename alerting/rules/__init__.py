"""Rule files: the model (:mod:`.model`) and the loader with ``file:line:col`` errors (:mod:`.loader`)."""

from alerting.rules.loader import RuleSet, load_paths
from alerting.rules.model import Condition, Group, Labels, Rule

__all__ = ["Condition", "Group", "Labels", "Rule", "RuleSet", "load_paths"]
