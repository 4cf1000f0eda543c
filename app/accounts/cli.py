"""Command-line tools for accounts (none yet: users sign up and are invited in the app)."""

COMMANDS: list = []
