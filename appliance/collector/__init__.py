"""The fleet collector: devices push their diagnoses here, into one PostgreSQL database.

This package is importable anywhere: the server library (waitress) and the database driver
(psycopg) are imported only by the modules that talk to them. `protocol` and `client` are
standard-library only, because the device (appliance.sync) uses them too.
"""
