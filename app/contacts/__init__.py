"""Contacts: one record per family, its students, where it came from, and its timeline."""
