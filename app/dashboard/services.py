"""The dashboard changes nothing: its pages only read (app.dashboard.queries), so it has
no services. The file is here because every domain has the same files."""
