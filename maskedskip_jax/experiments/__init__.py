"""Experiments over many trainings: the ablations."""
