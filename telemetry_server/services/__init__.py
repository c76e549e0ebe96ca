"""Use cases: what the API does, in terms of the store and the cache."""
