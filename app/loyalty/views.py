"""loyalty: views."""

BLUEPRINTS: list = []
