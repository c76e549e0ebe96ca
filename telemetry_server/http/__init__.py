"""The only package that touches ASGI `scope`, `receive` and `send`."""
