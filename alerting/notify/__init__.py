"""Notifications: the pipeline and one module per receiver integration."""
