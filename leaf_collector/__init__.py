"""The fleet collector: devices push their diagnoses here, into one PostgreSQL database.

Its own package, beside the device's: it imports nothing of `appliance` (import-linter checks
it), only the wire protocol both sides share (`leaf_wire`). The server library (waitress) and
the database driver (psycopg) are imported only by the modules that talk to them.
"""

__version__ = "1.0.0"
