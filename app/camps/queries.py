"""camps: queries."""
