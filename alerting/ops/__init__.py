"""Operating the worker: metrics, history of transitions and notifications, structured logs."""
