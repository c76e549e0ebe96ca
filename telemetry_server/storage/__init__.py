"""Adapters to MongoDB and Redis: the only modules that import pymongo or redis."""
