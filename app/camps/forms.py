"""camps: forms."""
