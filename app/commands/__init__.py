"""Commands run from the command line (`radlens predict`, ...): above the session, inference and loaders."""
