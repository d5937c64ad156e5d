"""Training configs (code): each ``get_config()`` docstring holds the command that runs it."""
