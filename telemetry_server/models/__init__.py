"""Pure data, validation and parsing: no I/O, synchronous, fully unit-testable."""
