"""Tests of the device's push to base, against the in-process collector on a throw-away PostgreSQL."""
