"""An API key that does not exist and a wrong key (well-formed, with the display prefix of a
real key: what someone who saw ``at_live_abcd…`` in a dashboard would try) take the same time
to refuse, so timing does not tell whether a prefix is in use.

Method: 300 requests of each kind (plus 40 of warm-up), each with a fresh key, sent in one
random interleaved order so that load on the machine falls on both alike; the times are
compared with a two-sided Mann-Whitney U test (normal approximation) and by their medians and
20 % trimmed means. The test fails only when the difference is both significant (|z| > 4) and
material (medians more than 5 % apart): robust on a loaded two-core machine, and still
sensitive, as its own control shows: the same statistic must tell malformed keys (refused on
their checksum, without a lookup) from unknown ones (one database lookup).
"""

from __future__ import annotations

import gc
import math
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest

from alttext.accounts import keys
from alttext.http import deps

N = 300
WARMUP = 40


def _key_with_prefix(display: str) -> str:
    """A well-formed key (right checksum) that starts like ``display`` (``at_live_abcd``)."""
    head = display[len(keys.KEY_PREFIX) :]
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    body = head + "".join(random.choice(alphabet) for _ in range(32 - len(head)))
    key = keys.KEY_PREFIX + body + keys._checksum(body)
    assert keys.is_well_formed(key)
    return key


def _malformed() -> str:
    key = keys.generate_key()
    return key[:-1] + ("A" if key[-1] != "A" else "B")  # the checksum no longer matches


def mann_whitney_z(x: list[float], y: list[float]) -> float:
    """z of the Mann-Whitney U statistic (no ties among float timings): > 0 when x is slower."""
    ranked = sorted([(v, 0) for v in x] + [(v, 1) for v in y])
    rank_sum_x = sum(rank for rank, (_, group) in enumerate(ranked, start=1) if group == 0)
    n1, n2 = len(x), len(y)
    u = rank_sum_x - n1 * (n1 + 1) / 2
    return (u - n1 * n2 / 2) / math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)


def trimmed_mean(values: list[float], cut: float = 0.2) -> float:
    ordered = sorted(values)
    k = int(len(ordered) * cut)
    return statistics.fmean(ordered[k : len(ordered) - k])


async def _timed(client: Any, kinds: dict[str, Callable[[], str]]) -> dict[str, list[float]]:
    """Seconds per request of each kind, in one random interleaved order."""
    order = [kind for kind in kinds for _ in range(N + WARMUP)]
    random.shuffle(order)
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    secrets = [(kind, kinds[kind]()) for kind in order]
    gc.collect()
    gc.disable()
    try:
        for kind, secret in secrets:
            started = time.perf_counter()
            r = await client.get("/v1/account", headers={"Authorization": f"Bearer {secret}"})
            times[kind].append(time.perf_counter() - started)
            assert r.status_code == 401, r.text
    finally:
        gc.enable()
    # The first requests of each kind warm caches and code paths up.
    return {kind: values[WARMUP:] for kind, values in times.items()}


def _summary(name: str, values: list[float]) -> str:
    return (
        f"{name}: median {statistics.median(values) * 1e3:.3f} ms, "
        f"trimmed mean {trimmed_mean(values) * 1e3:.3f} ms"
    )


async def test_unknown_and_wrong_keys_take_indistinguishable_time(
    service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Hundreds of refusals from one address would be throttled (deps.FAILED_AUTH_LIMIT).
    monkeypatch.setattr(deps, "FAILED_AUTH_LIMIT", 10**9)
    account = await service.create_account("timing@example.com")
    display = keys.display_prefix(account.key)
    assert (await service.client.get("/v1/account", headers=account.headers)).status_code == 200

    times = await _timed(
        service.client,
        {
            "unknown": keys.generate_key,
            "wrong": lambda: _key_with_prefix(display),
            "malformed": _malformed,
        },
    )
    unknown, wrong, malformed = times["unknown"], times["wrong"], times["malformed"]
    z = mann_whitney_z(wrong, unknown)
    medians = statistics.median(wrong), statistics.median(unknown)
    apart = abs(medians[0] - medians[1]) / min(medians)
    report = "; ".join(
        [
            _summary("wrong key", wrong),
            _summary("unknown key", unknown),
            _summary("malformed key", malformed),
            f"wrong vs unknown z={z:.2f}, medians {apart:.1%} apart",
            f"unknown vs malformed z={mann_whitney_z(unknown, malformed):.2f}",
        ]
    )
    print(report)
    assert not (abs(z) > 4 and apart > 0.05), report
    # The control: one database lookup more is found by the same statistic.
    assert mann_whitney_z(unknown, malformed) > 3, report
