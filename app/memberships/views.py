"""memberships: views."""

BLUEPRINTS: list = []
