"""Forms of the notifications domain (the outbox page only needs app.forms.ConfirmForm)."""
