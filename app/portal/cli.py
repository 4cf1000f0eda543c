"""Command-line tools for portal (none yet)."""

COMMANDS: list = []
