"""Customer segments: behavioural profiles, rule segments and learned (k-means) segments.

The renderer asks one question, :func:`segment_for_contacts`: which segment's
blocks each contact gets, or None for the standard version. Contacts who
objected to profiling are never profiled and always get None.

* :mod:`engine.segments.features` -- :class:`Profiles` from orders and engagement;
* :mod:`engine.segments.rules` -- the rule language of ``templates/segments.toml``;
* :mod:`engine.segments.model` -- clustering, naming, the JSON model;
* :mod:`engine.segments.store` -- the tables and :func:`segment_for_contacts`;
* :mod:`engine.segments.build` -- build, list and explain (``tact segments``).
"""

from engine.errors import ModelFormatError, RuleError, SegmentError
from engine.segments.build import BuildOptions, BuildReport, build, explain, overview
from engine.segments.features import EUR_PER_UNIT, Profiles, compute_profiles
from engine.segments.model import SegmentModel, fit
from engine.segments.rules import RuleSegment, load_rules, parse_rule, parse_rules
from engine.segments.store import forget, latest_model, segment_for_contacts

__all__ = [
    "EUR_PER_UNIT",
    "BuildOptions",
    "BuildReport",
    "ModelFormatError",
    "Profiles",
    "RuleError",
    "RuleSegment",
    "SegmentError",
    "SegmentModel",
    "build",
    "compute_profiles",
    "explain",
    "fit",
    "forget",
    "latest_model",
    "load_rules",
    "overview",
    "parse_rule",
    "parse_rules",
    "segment_for_contacts",
]
