"""The project's one exception hierarchy.

Everything the package raises on purpose derives from :class:`GivTcpError`. Timeout classes
also derive from :class:`TimeoutError` so generic ``except TimeoutError`` handlers keep working.
"""

from __future__ import annotations


class GivTcpError(Exception):
    """Root of every error raised by givtcp-async."""


# --- framing -------------------------------------------------------------------------------


class FrameError(GivTcpError):
    """A byte sequence is not a valid GivEnergy frame."""


class MalformedFrame(FrameError):
    """Header, length or layout does not match any known frame kind."""


class CrcMismatch(FrameError):
    """The sub-frame CRC does not match; the frame must not be decoded into values.

    ``kind``, ``device_address`` and ``function`` describe what the frame claimed to be, for
    counting and diagnostics only.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        device_address: int | None,
        function: int | None,
        crc_wire: int,
        crc_computed: int,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.device_address = device_address
        self.function = function
        self.crc_wire = crc_wire
        self.crc_computed = crc_computed


class EncodeError(FrameError):
    """A frame cannot be encoded (a field out of range)."""


# --- connection ----------------------------------------------------------------------------


class CommunicationError(GivTcpError):
    """Talking to the dongle failed."""


class NotConnected(CommunicationError):
    """No connection to the dongle is open, and none came up in time."""


class ConnectionLost(CommunicationError):
    """The connection dropped while a request was outstanding."""


class ConnectionClosed(CommunicationError):
    """The connection was closed on purpose; no more requests are accepted."""


class RequestTimeout(CommunicationError, TimeoutError):
    """No matching response arrived in time (after every retry)."""


class DeviceErrorResponse(CommunicationError):
    """The device answered with an error frame (function byte with bit 7 set)."""

    def __init__(self, message: str, *, device_address: int, function: int) -> None:
        super().__init__(message)
        self.device_address = device_address
        self.function = function


class WriteMismatch(CommunicationError):
    """A write echo reports a value other than the one written."""


# --- capture files -------------------------------------------------------------------------


class CaptureFormatError(GivTcpError):
    """A capture file line is neither the JSONL nor the plain text format."""


# --- data model ----------------------------------------------------------------------------


class UnsupportedModel(GivTcpError):
    """The device type code or firmware is not one this project can serve."""


class DetectionError(CommunicationError):
    """Plant detection could not read what it needs."""


class IdentityError(DetectionError):
    """The unit at the configured address is not the one expected (``inverters[].serial``), or
    reports a serial that is not a GivEnergy serial."""


# --- control -------------------------------------------------------------------------------


class ControlError(GivTcpError):
    """A control command could not be carried out."""


class ValidationFailed(ControlError):
    """A command payload was rejected before anything was written.

    ``errors`` holds one dict per problem with ``field``, ``value`` and ``allowed``.
    """

    def __init__(self, message: str, errors: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.errors = errors


class UnknownFunction(ControlError):
    """No control function of that name exists."""


class WriteNotAllowed(ControlError):
    """A register is not on the write allow-list for this model."""


class WriteBudgetExceeded(ControlError):
    """The configured daily write budget would be exceeded."""


class WriteTooSoon(ControlError):
    """A register would be written again sooner than ``control.min_write_interval`` allows."""


class StateError(ControlError):
    """Control state (write count, pending restore) could not be made durable, or read."""


# --- configuration -------------------------------------------------------------------------


class ConfigError(GivTcpError):
    """The configuration is invalid; the message names the key."""
