"""Institutions: signup, settings and branding."""
