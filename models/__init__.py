"""Training pipeline for the leaf classifier (not installed on the device)."""
