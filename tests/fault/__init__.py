"""Fault injection: kills and restarts, bad input of every kind, determinism."""
