"""Local stand-ins for the services Cohort talks to in production: an SMTP mailbox, an SMS
gateway and a fake Stripe (localstripe). `cohort dev`, the tests and the benchmarks use
them; production code never imports this package (an import-linter contract checks it)."""
