"""API keys and roles: the key format, hashing, role checks, and the guard that applies them per route."""
