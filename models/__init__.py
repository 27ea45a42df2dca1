"""Pure analytics: numba kernels, the ISO 22400 time model, plant calendar and anomaly models.

Nothing here imports Kafka, Faust, Prometheus or reads the environment: arrays in, arrays or small
frozen results out, so the stream, ``analyze``, training and benchmarks share one implementation.
"""
