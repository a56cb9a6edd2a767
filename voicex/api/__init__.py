"""HTTP handlers, one module per area of the API; each exposes ``routes`` to register."""
