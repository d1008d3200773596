"""Errors of the domain core that reach the user as one clear line."""


class GeoInputError(ValueError):
    """Bad geographic input: names the file (or district) and the problem."""
