"""Fingerprints of pages the dongle corrupts while keeping a valid CRC (SPEC §3.6, §6.3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

# "Pattern A": words of a leaked network buffer at fixed offsets of an IR(0..59) page. The
# spec documents these four (offset, word) pairs; the leak also carries 0x4500 and 0x8018.
PATTERN_A: Final[dict[int, int]] = {28: 0x4C32, 41: 0xC0A8, 43: 0xC0A8, 59: 0x661E}
PATTERN_A_EXTRA_WORDS: Final = (0x4500, 0x8018)
PATTERN_A_THRESHOLD: Final = 3


def is_pattern_a(values: Sequence[int]) -> bool:
    """True when a 60-register page carries the leaked-buffer fingerprint."""
    if len(values) < 60:
        return False
    hits = sum(1 for offset, word in PATTERN_A.items() if values[offset] == word)
    return hits >= PATTERN_A_THRESHOLD


def is_all_zero(values: Sequence[int]) -> bool:
    """True for a page whose every register reads 0 ("Pattern B" when it used to hold data)."""
    return not any(values)


def pattern_a_page(values: Sequence[int]) -> tuple[int, ...]:
    """``values`` overwritten with the Pattern A fingerprint where the page reaches."""
    out = list(values)
    words = {**PATTERN_A, 30: PATTERN_A_EXTRA_WORDS[0], 31: PATTERN_A_EXTRA_WORDS[1]}
    for offset, word in words.items():
        if offset < len(out):
            out[offset] = word
    return tuple(out)
