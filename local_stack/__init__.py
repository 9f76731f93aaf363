"""Run the stack's processes locally without Docker: used by `make demo` and the tests."""
