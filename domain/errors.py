"""Errors of the domain core that reach the user as one clear line."""


class RosterError(ValueError):
    """A grid staff roster file that cannot be imported; the message names the rows (dashboard.deskdata)."""


class GeoInputError(ValueError):
    """Bad geographic input: names the file (or district) and the problem."""


class SimulationError(RuntimeError):
    """The simulation cannot start (its plan and the database disagree; feeds.simulator)."""
