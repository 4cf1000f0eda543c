"""Command-line tools for groups (none yet)."""

COMMANDS: list = []
