"""A journey system inside a test or a benchmark: the maps, a database, a worker on its own task queue, the client.

The top floor but one: it may import every package below it, and tests/ and bench/ import it (never the reverse).
"""
