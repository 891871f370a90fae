"""What the broker retains under our discovery node, as far as an announcement depends on it.

Home Assistant takes discovery in two formats: a payload per entity
(``<prefix>/<platform>/GivEnergy/<object id>/config``, GivTCP's and this project's
``entity`` format) and a payload per device (``<prefix>/device/GivEnergy/<object id>/config``,
the ``device`` format, 2024.11 and later). One entity must never be announced in both: Home
Assistant keeps the first and refuses the second. :class:`RetainedConfigs` follows, for the
announcing format:

* the configs of the *other* format that the broker holds for an inverter (GivTCP's, or an
  earlier setting's): the announcement hands them over (``migrate_discovery``, then the new
  configs, then an empty retained message on each). A ``migrate_discovery`` marker counts as
  one unless this connection published it: a hand-over cut short (the connection lost between
  the markers and the clearing) leaves markers retained, which the next connection clears;
* in the device format, the components each of our device payloads holds at the broker, so
  that one no longer announced is removed (Home Assistant keeps a component its payload omits),
  and the time entities' payload, cleared when its device is announced without it.

Everything is bounded: at most ``bound`` topics of each kind, and :data:`MAX_REMEMBERED`
components in all, are remembered (a broker may hold anything on these topics).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from givtcp_async.sinks import discovery
from givtcp_async.sinks.discovery import DEVICE, MIGRATE, NODE_ID, DiscoveryFormat

MAX_REMEMBERED: Final = 32 * 1024  # components of all device payloads (~100 bytes each)


class RetainedConfigs:
    """The retained discovery configs of our node that an announcement must take into account
    (fed every message of :meth:`filters`)."""

    def __init__(self, prefix: str, fmt: DiscoveryFormat, bound: int) -> None:
        self.prefix = prefix
        self.format = fmt
        self.bound = bound
        self._other: set[str] = set()  # retained configs of the other format
        self._marking: set[str] = set()  # topics this connection published a marker on
        self._payloads: dict[str, dict[str, str]] = {}  # device payload id -> components
        self._remembered = 0  # components in _payloads

    def filters(self) -> list[str]:
        """The subscriptions that show the retained configs this tracks."""
        if self.format == "device":  # every format's topics: ours and those to take over
            return [f"{self.prefix}/+/{NODE_ID}/+/config"]
        return [discovery.discovery_topic(self.prefix, DEVICE, "+")]

    def seen(self, topic: str, payload: str | bytes | None) -> bool:
        """Note one retained config (an empty payload: none; None: one too large to read).
        Returns whether it is one this tracks."""
        parts = discovery.discovery_parts(self.prefix, topic)
        if parts is None:
            return False
        platform, object_id = parts
        text = payload.decode(errors="replace") if isinstance(payload, bytes) else payload
        if platform == DEVICE and self.format == "device":
            if text is None:
                pass  # unread: what is known of it stays
            elif text:
                held = discovery.components(text)
                others = self._remembered - len(self._payloads.get(object_id, ()))
                fits = object_id in self._payloads or len(self._payloads) < self.bound
                if fits and others + len(held) <= MAX_REMEMBERED:
                    self._payloads[object_id] = held
                    self._remembered = others + len(held)
            else:
                self._remembered -= len(self._payloads.pop(object_id, {}))
            return True
        if (platform == DEVICE) == (self.format == "device"):
            return False  # the format announced (entity: the time leftovers are handled apart)
        echo = text == MIGRATE and topic in self._marking  # ours: the hand-over is under way
        if text is None or (text and not echo):
            if len(self._other) < self.bound:
                self._other.add(topic)
        else:
            self._other.discard(topic)
            if not text:
                self._marking.discard(topic)
        return True

    def others(self, serial: str) -> list[str]:
        """The retained configs of the other format that belong to ``serial``."""
        return sorted(t for t in self._other if self._owned(t, serial))

    def marking(self, topics: Iterable[str]) -> None:
        """A ``migrate_discovery`` marker is about to be published on each of ``topics`` (taken
        from :meth:`others`; the echo of their clearing forgets them)."""
        for topic in topics:
            if len(self._marking) < self.bound:
                self._marking.add(topic)

    def handed_over(self, topics: Iterable[str]) -> None:
        """``topics`` were cleared."""
        self._other.difference_update(topics)

    def components(self) -> Mapping[str, Mapping[str, str]]:
        """Components (id -> platform) of each device payload at the broker, by object id."""
        return self._payloads

    def retired(self, serial: str, announced: Iterable[str]) -> list[str]:
        """The time-entity payloads of ``serial`` at the broker whose device ``announced`` (the
        topics of its latest announcement) holds without them (``time_entities`` changed).
        Other payloads stay: a pack or meter not found yet at a start is announced later."""
        keep = set(announced)
        out = []
        for object_id in self._payloads:
            topic = discovery.discovery_topic(self.prefix, DEVICE, object_id)
            base = object_id.removesuffix(discovery.TIME_GROUP)
            device = discovery.discovery_topic(self.prefix, DEVICE, base)
            if base != object_id and topic not in keep and device in keep:
                out.append(topic)
        return sorted(t for t in out if self._owned(t, serial))

    def _owned(self, topic: str, serial: str) -> bool:
        parts = discovery.discovery_parts(self.prefix, topic)
        return parts is not None and discovery.owned_by(parts[1], serial)
