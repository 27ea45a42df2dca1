"""Benchmarks that gate the hot path: every figure is a ratio against a baseline run in the same session.

``python -m benchmarks.run --quick|--full`` runs every ``benchmarks/bench_*.py`` module (each exposes
``figures(quick: bool) -> list[Figure]``), writes ``benchmarks/results.json`` and its section of
``benchmarks/RESULTS.md``, and fails when a ratio falls below its floor in ``benchmarks/floors.json``.
"""
