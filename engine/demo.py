"""``make demo``'s old home: the demo is a use-case now, :mod:`engine.app.demo`.

This module only re-exports it (``from engine.demo import run_demo`` keeps working);
it sits above the application layer and, like a face, runs no SQL of its own.
"""

from __future__ import annotations

from engine.app.demo import CAMPAIGN, Deferred, DemoReport, Sample, Start, run_demo

__all__ = ["CAMPAIGN", "Deferred", "DemoReport", "Sample", "Start", "run_demo"]
