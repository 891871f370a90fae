"""100 concurrent POSTs of different commands: every one answered, every one carried out alone
through the inverter's one queue, and the registers end as the last command of each kind left
them. Also the latency from a POST to its write frame at the dongle."""

from __future__ import annotations

import asyncio
import json
import random
import statistics
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from givtcp_async.protocol.frames import ReadRequest, WriteRequest
from tests.rest_support import RestRig, rest_rig, settled


def _time(n: int) -> str:
    return f"{n // 60:02d}{n % 60:02d}"


def commands() -> list[tuple[str, str, Any]]:
    """(kind, function, payload): ten kinds on disjoint registers, ten values each."""
    out: list[tuple[str, str, Any]] = []
    for i in range(10):
        out += [
            ("target", "setChargeTarget", {"chargeToPercent": str(20 + i)}),
            ("reserve", "setBatteryReserve", {"reservePercent": str(30 + i)}),
            ("cutoff", "setBatteryCutoff", {"dischargeToPercent": str(5 + i)}),
            ("charge2", "setChargeSlot2", {"start": _time(60 + i), "finish": _time(120 + i)}),
            ("discharge2", "setDischargeSlot2",
             {"start": _time(600 + i), "finish": _time(700 + i)}),
            ("target3", "setChargeTarget3", str(40 + i)),
            ("dtarget2", "setDischargeTarget2", {"dischargeToPercent": str(50 + i)}),
            ("pause", "setPauseSlot", {"start": _time(900 + i), "finish": _time(1000 + i)}),
            ("active", "setActivePowerRate", {"activePowerRate": str(60 + i)}),
            ("start5", "setChargeStart5", _time(300 + 7 * i)),
        ]  # fmt: skip
    return out


async def _post(
    session: aiohttp.ClientSession, url: str, payload: Any, busy: list[int]
) -> tuple[int, Any]:
    """POST as a well-behaved client: beyond the 32 commands REST lets wait, the answer is 503
    with Retry-After (nothing written), and the command is sent again (sooner than asked, to
    keep the test short)."""
    data = payload if isinstance(payload, str) else json.dumps(payload)
    while True:
        async with session.post(url, data=data) as resp:
            body = await resp.json()
            if resp.status != 503 or body.get("error") != "too many commands":
                return resp.status, body
            assert resp.headers["Retry-After"] == "5"
        busy.append(1)
        await asyncio.sleep(0.05)


def _never_overlapping(r: RestRig, after: int) -> int:
    """Requests reach the dongle one at a time: each is answered before the next is sent."""
    waiting = False
    seen = 0
    for ev in r.rig.sim.events:
        if ev.seq < after:
            continue
        if ev.kind == "request" and isinstance(ev.frame, ReadRequest | WriteRequest):
            assert not waiting, f"request {ev.seq} sent while another was unanswered"
            waiting = True
            seen += 1
        elif ev.kind == "response":
            assert waiting, f"response {ev.seq} without a request"
            waiting = False
    return seen


# No request may time out while 100 commands queue: a 0.5 s answer time (the tests' default) is
# within reach of a loaded machine running the suite on two workers, a 3 s one is not.
PATIENT = {"read_timeout": 3.0, "write_timeout": 3.0}


async def test_hundred_concurrent_posts_are_serialised_and_end_consistent(
    tmp_path: Path,
) -> None:
    async with rest_rig(tmp_path, inverter=PATIENT) as r:
        await settled(r.rig)
        batch = commands()
        random.Random(6).shuffle(batch)
        timeouts = r.rig.coordinator.conn.stats.timeouts
        mark = r.rig.sim.mark()
        connector = aiohttp.TCPConnector(limit=0)
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession(connector=connector) as session:
            started = loop.time()
            busy: list[int] = []
            answers = await asyncio.gather(
                *(_post(session, r.url(fn), payload, busy) for _kind, fn, payload in batch)
            )
            elapsed = loop.time() - started
        print(f"\n100 concurrent POSTs answered in {elapsed:.2f} s ({len(busy)} sent again)")
        assert busy  # 100 at once is more than may wait
        # Every one answered, every one carried out.
        assert len(answers) == 100
        for (kind, fn, payload), (status, body) in zip(batch, answers, strict=True):
            assert status == 200, (kind, payload, body)
            assert body["status"] == "ok"
            assert body["function"] == fn

        # One command at a time: in the order they ran (their start times, taken under the
        # command lock), their writes are exactly the write frames the dongle saw, none
        # interleaved with another command's.
        runs = sorted(
            zip(batch, answers, strict=True),
            key=lambda item: datetime.fromisoformat(item[1][1]["at"]),
        )
        expected = [(w["register"], w["value"]) for _cmd, (_s, body) in runs
                    for w in body["written"]]  # fmt: skip
        assert r.writes_seen(mark) == expected
        assert len(expected) >= 60
        assert _never_overlapping(r, mark) >= len(expected)
        assert r.rig.coordinator.conn.stats.timeouts == timeouts

        # The registers hold what the last command of each kind asked for.
        last: dict[str, dict[str, Any]] = {}
        for (kind, _fn, _payload), (_status, body) in runs:
            last[kind] = body
        assert len(last) == 10
        for kind, body in last.items():
            for change in body["registers"]:
                assert r.hr(change["register"]) == change["new"], (kind, change)
        assert r.hr(116) == int(last["target"]["payload"]["chargeToPercent"])
        assert r.hr(110) == int(last["reserve"]["payload"]["reservePercent"])


async def test_latency_from_post_to_the_write_frame(tmp_path: Path) -> None:
    """Figures for the report: POST -> write frame at the dongle -> HTTP answer."""
    async with rest_rig(tmp_path) as r:
        await settled(r.rig)
        loop = asyncio.get_running_loop()
        to_frame: list[float] = []
        to_answer: list[float] = []
        for i in range(20):
            mark = r.rig.sim.mark()
            started = loop.time()
            status, body = await r.post("setChargeTarget", str(30 + i))
            answered = loop.time()
            assert status == 200, body
            ev = await r.rig.sim.wait_for(
                lambda e: e.kind == "request" and isinstance(e.frame, WriteRequest), after=mark
            )
            to_frame.append(ev.time - started)
            to_answer.append(answered - started)
        frame_ms = statistics.median(to_frame) * 1000
        answer_ms = statistics.median(to_answer) * 1000
        print(f"\nPOST -> write frame: median {frame_ms:.1f} ms, max {max(to_frame) * 1000:.1f} ms;"
              f" POST -> answer (read, write, read-back): median {answer_ms:.1f} ms")  # fmt: skip
        assert frame_ms < 250
        assert answer_ms < 500
