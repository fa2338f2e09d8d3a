"""Offline plant-disease diagnosis appliance.

Importing this package pulls in no hardware library: adapters import theirs lazily.
"""

__version__ = "0.1.0"
