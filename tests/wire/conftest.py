"""Tests of the wire package both sides import."""
