"""Where ``celery -A alerting`` finds the app; it lives in :mod:`alerting.worker.app`."""

from alerting.worker.app import app

__all__ = ["app"]
