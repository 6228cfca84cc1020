"""Thin Celery tasks: each unpacks its arguments and calls into the ``alerting`` library."""
