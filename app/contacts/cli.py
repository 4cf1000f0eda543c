"""Command-line tools for contacts (none yet)."""

COMMANDS: list = []
