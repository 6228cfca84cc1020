"""Configuration: settings read once from the environment, and alerting.yml parsed into data."""
