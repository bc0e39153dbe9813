"""Benchmarks: figures printed as a table and as JSON, recorded in docs/benchmarks.md. Never asserted in tests."""
