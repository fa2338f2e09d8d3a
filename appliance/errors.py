"""Errors a person can act on: each carries a message fit to show as it is."""


class ApplianceError(Exception):
    """Base for errors whose message is written for the operator."""


class ImageError(ApplianceError):
    """An input file that is not a usable photo (unreadable, truncated, too large, not an image)."""


class ModelError(ApplianceError):
    """The classifier model is missing, corrupt or does not match its checksum."""


class ConfigError(ApplianceError):
    """A configuration file that cannot be used; the message names file, key and reason."""
