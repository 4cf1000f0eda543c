"""Command-line tools for the dashboard (none yet)."""

COMMANDS: list = []
