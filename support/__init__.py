"""Development aids shared by the tests and the benchmarks; not part of Tact.

Lives at the top of the checkout, beside ``tests/`` and ``bench/``, so that neither
imports the other; not installed (pyproject.toml packages only ``engine`` and
``workers``).
"""
