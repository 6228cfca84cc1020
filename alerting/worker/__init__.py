"""The Celery worker: app, beat scheduler, and the runtime that builds everything from configuration."""
