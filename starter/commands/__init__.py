"""One module per ``journeys`` sub-command, each with ``register(subparsers)``."""
