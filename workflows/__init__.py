"""Deterministic workflow code only: the journey interpreter and the pure helpers it uses."""
