"""Gateway (DTC 70xx) specifics at 0x11 (SPEC §4.7: IR1600-1959; controls use the standard
single-phase holding registers, which :mod:`givtcp_async.registers.inverter` covers).

The spec gives no layout for IR1600+. The capture (gateway_gaaa0014, two All-in-Ones) pins down
only the serials of the connected All-in-Ones (IR1841-1845 and IR1846-1850, "CH…" like the AIO
serials elsewhere in the page) and the gateway software string IR1600-1601 ("GAAA", as in the
capture's name GAAA0014 with ARM firmware HR21 = 14). Names: ``Gateway_Software_Version``
(GivTCP's) and ``AIO_n_Serial_Number`` (path ``Inverters/AIO_n``, GivTCP's grouping).
"""

from __future__ import annotations

from typing import Final

from givtcp_async.registers.schema import DIAGNOSTIC, Bank, Enc, Family, Field, Kind

IR = Bank.INPUT
_GATEWAY: Final = frozenset({Family.GATEWAY})

GATEWAY_FIELDS: Final[tuple[Field, ...]] = (
    Field("Gateway_Software_Version", ("Invertor_Details",), IR, (1600, 1601), enc=Enc.ASCII,
          kind=Kind.INFO, families=_GATEWAY, ha=DIAGNOSTIC),
    *(
        Field(f"AIO_{n}_Serial_Number", ("Inverters", f"AIO_{n}"), IR,
              tuple(range(1841 + 5 * (n - 1), 1846 + 5 * (n - 1))), enc=Enc.ASCII,
              kind=Kind.INFO, families=_GATEWAY, ha=DIAGNOSTIC)
        for n in (1, 2)
    ),
)  # fmt: skip
