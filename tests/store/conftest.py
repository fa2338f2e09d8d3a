"""Tests of the diagnosis log on real SQLite files after real migrations, and its history renderings."""
