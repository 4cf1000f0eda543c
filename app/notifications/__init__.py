"""Notifications: the outbox, its channels and its delivery jobs."""
