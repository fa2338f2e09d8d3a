"""Tests of the training pipeline: split, augmentation, evaluation rules, a retraining smoke run."""
