"""The worker's HTTP surface: /metrics, /healthz and /readyz."""
