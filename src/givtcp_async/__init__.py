"""givtcp-async: a local bridge for GivEnergy inverters."""

__version__ = "0.1.0"
