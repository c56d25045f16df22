"""Training the shipped models from ../shared/datasets: `python -m app.training MODEL` (or `radlens train`)."""
