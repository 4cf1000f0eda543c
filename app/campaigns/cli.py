"""Command-line tools for campaigns (none yet: the sweeper runs from the scheduler)."""

COMMANDS: list = []
