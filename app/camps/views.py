"""camps: views."""

BLUEPRINTS: list = []
