"""The worker's HTTP pages, served on Faust's web port: /metrics, /health, /ready, /status, /api/machines."""

from service.web.routes import register_routes

__all__ = ["register_routes"]
