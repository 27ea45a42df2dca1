"""Composition root: settings, CLI, brokers, simulator, analyze, web, metrics and the run supervisor."""
