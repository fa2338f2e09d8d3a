"""Image decoding, preprocessing and quality measures shared by training and runtime."""
