"""Process entry points: the worker that runs journeys and their activities."""
