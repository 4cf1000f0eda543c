"""Accounts: users, memberships and roles, login, password reset, invitations."""
