"""Command-line tools for camps (none yet)."""

COMMANDS: list = []
