"""Whose pages these are: the inverter's serial checked at detection and on every page.

A serial is trusted only in GivEnergy's shape (:func:`~givtcp_async.quality.pages.
is_valid_serial`), so it is safe in MQTT topics, file names and URLs. At detection the serial in
HR13-17 must have that shape and, when ``inverters[].serial`` pins one, be that one
(:func:`check_serial`). Afterwards :class:`IdentityGuard` judges every page offered to the
register cache:

* a response to our own request whose header serial or HR13-17 names *another* inverter means
  another unit now answers at this address (a DHCP swap): the page is refused and
  :attr:`IdentityGuard.found` holds that serial until the right one answers again; the
  coordinator publishes nothing and writes nothing meanwhile;
* a page nobody of ours asked for (the dongle's fan-out of other clients' traffic) is accepted
  only when its header carries this inverter's serial (a battery module's own serial behind an
  HV stack), it replaces a page of the same shape that our own polls read, and HR13-17, where it
  covers them, hold this inverter's serial.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from givtcp_async.errors import IdentityError
from givtcp_async.protocol.frames import FunctionCode, ReadResponse, WriteResponse, serial_text
from givtcp_async.quality.pages import PageVerdict, ascii_from_registers, is_valid_serial

INVERTER: Final = 0x11
SERIAL_REGISTERS: Final = range(13, 18)  # HR13-17: the inverter's serial, 2 characters each
HV_DEVICES: Final = 0x50  # BMU/BCU/BAMS at and above this answer with their own serials
SERIAL_SHAPE: Final = "2 letters, 4 digits, a letter and 3 digits (SA2347G000), or EMS and 7 digits"


def check_serial(serial: str, expected: str | None, where: str) -> None:
    """Raise :class:`IdentityError` unless ``serial`` (HR13-17 of the unit at ``where``) is a
    GivEnergy serial and, when ``expected`` pins one, that one."""
    if not is_valid_serial(serial):
        raise IdentityError(
            f"the inverter at {where} reports the serial {serial!r}, which is not a GivEnergy "
            f"serial ({SERIAL_SHAPE}); refusing to serve it"
        )
    if expected is not None and serial != expected:
        raise IdentityError(
            f"serial mismatch at {where}: found {serial}, configured {expected} "
            "(inverters[].serial); refusing every write and publication for it"
        )


def page_serial(values: Sequence[int], base: int) -> str | None:
    """HR13-17 as text when a holding page of the inverter starting at ``base`` covers them."""
    first, last = SERIAL_REGISTERS[0] - base, SERIAL_REGISTERS[-1] - base
    if first < 0 or last >= len(values):
        return None
    return ascii_from_registers(values[first : last + 1])


class IdentityGuard:
    """Admits pages of one inverter to its register cache (see the module docstring)."""

    def __init__(self, serial: str) -> None:
        self.serial = serial
        self._raw = serial.encode("ascii")
        self.found: str | None = None  # another inverter's serial seen answering our requests

    def judge(
        self, frame: ReadResponse, solicited: bool, previous: Sequence[int] | None
    ) -> PageVerdict | None:
        """None to admit ``frame``; else the verdict refusing it."""
        header = serial_text(frame.serial)
        ours = frame.serial == self._raw
        inverter = frame.device_address == INVERTER
        text = (
            page_serial(frame.values, frame.base_register)
            if inverter and frame.function == FunctionCode.READ_HOLDING
            else None
        )
        if solicited:
            # Another unit's serial in our own answers: another inverter is at this address.
            other = next(
                (s for s in ((header if inverter else None), text)
                 if s is not None and s != self.serial and is_valid_serial(s)),
                None,
            )  # fmt: skip
            if other is not None:
                self.found = other
                return PageVerdict.IDENTITY
            if text is not None and text != self.serial:
                return PageVerdict.IDENTITY  # a corrupt serial: not data to keep
            if text == self.serial or (inverter and ours):
                self.found = None
            return None
        if not (ours or (frame.device_address >= HV_DEVICES and is_valid_serial(header))):
            return PageVerdict.IDENTITY
        if previous is None or len(previous) != len(frame.values):
            return PageVerdict.IDENTITY  # not a page our polls read: nothing to compare with
        if text is not None and text != self.serial:
            return PageVerdict.IDENTITY
        return None

    def admit_write(self, frame: WriteResponse) -> bool:
        """Whether another client's write echo may update the cache: only this inverter's."""
        return frame.serial == self._raw
