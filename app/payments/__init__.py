"""Payments through Stripe: the client, payment records and their state machine, webhooks,
reconciliation and the institution's Stripe settings."""
