"""Thin HTTP handlers: parse the request, call one service, return a response."""
