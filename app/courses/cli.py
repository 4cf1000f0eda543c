"""Command-line tools for courses (none yet)."""

COMMANDS: list = []
