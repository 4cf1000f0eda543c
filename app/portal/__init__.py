"""The parent's own page: reached without a password, through a signed link in any message
or a one-time link sent to the family's phone or e-mail."""
