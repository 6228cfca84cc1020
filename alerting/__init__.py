"""Alert evaluator worker: Prometheus-format rules over PromQL and SQL, routed Alertmanager-style.

The Celery app lives in :mod:`alerting.worker.app` (``celery -A alerting worker -B`` finds it there).
"""

__version__ = "0.1.0"
