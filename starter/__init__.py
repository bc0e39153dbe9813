"""How the outside world reaches journeys: the Python client for backends and the ``journeys`` command."""
