"""Command-line tools for memberships (none yet)."""

COMMANDS: list = []
