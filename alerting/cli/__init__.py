"""The ``alerting`` command."""
