"""Helpers for the torture tests: a writer process to kill, shared diagnoses and size-limited mounts."""
