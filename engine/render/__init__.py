"""Rendering: the sandboxed brand base, MIME building."""
