"""Command-line tools for loyalty (none yet)."""

COMMANDS: list = []
