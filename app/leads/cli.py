"""Command-line tools for leads (none yet)."""

COMMANDS: list = []
