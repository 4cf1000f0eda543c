"""Command-line tools for institutions (none yet; the demo seed is `cohort seed-demo`)."""

COMMANDS: list = []
