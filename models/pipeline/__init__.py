"""Split, train, export, quantize and evaluate the leaf classifier."""
