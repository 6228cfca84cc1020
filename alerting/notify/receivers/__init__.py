"""One module per integration kind (slack_configs, webhook_configs, ...)."""
