"""camps: services."""
