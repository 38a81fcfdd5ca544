"""One self-contained HTML page per model: ``flowcore report`` (issue 21)."""
