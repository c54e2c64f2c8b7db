"""Erasure that erases: after ``DELETE /v1/account`` the account's e-mail address, id and name
are in none of SQLite's files (the database, its ``-wal`` and ``-shm``), not only in none of
its rows. ``secure_delete`` zeroes deleted rows and freed pages; the checkpoint after the
erasure moves the zeroed pages home and empties the WAL, which held the earlier versions.

On PostgreSQL the file check does not apply (docs/privacy.md, "Erasure on disk"): there the
test checks that the tables the erasure touched are vacuumed after it.
"""

from __future__ import annotations

import asyncio
import base64
import io
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import text
from sqlalchemy.engine import make_url

from alttext.db import is_sqlite, transaction
from tests.privacy.jobs_support import add_job, add_message
from tests.privacy.rights_support import rights_service


def _png() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), "olive").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _files(database_url: str) -> list[Path]:
    path = Path(make_url(database_url).database or "")
    return [path, Path(f"{path}-wal"), Path(f"{path}-shm")]


def _traces(files: list[Path], needles: dict[str, str]) -> list[tuple[str, str]]:
    """(file, needle name) for every needle found in the raw bytes of every file that exists."""
    found = []
    for file in files:
        if not file.exists():
            continue
        raw = file.read_bytes()
        for name, value in needles.items():
            if value.encode() in raw or value.encode("utf-16-le") in raw:
                found.append((file.name, name))
    return found


async def test_an_erased_account_leaves_no_bytes_in_the_database_files(
    service_factory: Callable[..., Any], database_url: str
) -> None:
    tag = secrets.token_hex(6)
    email = f"zebrafinch-{tag}@erasure-files.example"
    name = f"Quillonella Vantreeve {tag}"
    async with rights_service(service_factory, free_credits=5) as rs:
        account_id, headers, prefix = await rs.open_account(email)
        # Use the account: a name, a second key, a request, an address change pending, a job
        # with items and a webhook message with delivery attempts.
        named = await rs.client.patch("/v1/account", headers=headers, json={"name": name})
        assert named.status_code == 200, named.text
        key = await rs.client.post("/v1/keys", headers=headers, json={"name": name})
        assert key.status_code == 201, key.text
        done = await rs.client.post(
            "/v1/alt-text",
            headers=headers,
            json={"image": _png(), "context": f"{name}'s holiday photo"},
        )
        assert done.status_code == 200, done.text
        moving = await rs.client.patch(
            "/v1/account", headers=headers, json={"email": f"moving-{email}"}
        )
        assert moving.status_code == 200, moving.text
        async with transaction(rs.sessions) as session:
            job = await add_job(session, account_id, items=3, tag=name.replace(" ", "-"))
            await add_message(session, account_id, job.job_id, tag=name.replace(" ", "-"))
        export = await rs.client.get("/v1/account/export", headers=headers)
        assert export.status_code == 200

        needles = {
            "email": email,
            "new email": f"moving-{email}",
            "account id": account_id,
            "name": name,
            "key prefix": prefix,
            "second key id": key.json()["id"],
            "request id": done.json()["id"],
            "job tag": name.replace(" ", "-"),
        }
        if is_sqlite(database_url):
            before = {n for _, n in _traces(_files(database_url), needles)}
            # The control: the data did reach the files (else the test would prove nothing).
            assert {"email", "account id", "name"} <= before, before

        erased = await rs.client.request(
            "DELETE", "/v1/account", headers=headers, json={"confirm": email}
        )
        assert erased.status_code == 200, erased.text
        assert (await rs.client.get("/v1/account", headers=headers)).status_code == 401

        if not is_sqlite(database_url):
            await _wait_for_vacuum(rs.svc.app.state.services.sessions, ["accounts", "api_keys"])
            return
        # While the service still runs, its connections open: the bytes are gone already.
        files = _files(database_url)
        assert _traces(files, needles) == []
        # Work after the erasure reuses the WAL; still nothing comes back.
        other = await rs.svc.create_account("someone-else@example.com")
        assert (await rs.client.get("/v1/account", headers=other.headers)).status_code == 200
        assert _traces(files, needles) == []
    # And after the last connection closed (SQLite checkpoints and removes the WAL then).
    assert _traces(_files(database_url), needles) == []


async def _wait_for_vacuum(sessions: Any, tables: list[str]) -> None:
    """PostgreSQL: the background VACUUM of the erased rows' tables ran."""
    deadline = time.monotonic() + 30
    while True:
        async with sessions() as session:
            rows = await session.execute(
                text(
                    "SELECT relname FROM pg_stat_user_tables "
                    "WHERE relname = ANY(:tables) AND last_vacuum IS NOT NULL"
                ),
                {"tables": tables},
            )
            vacuumed = {r[0] for r in rows}
        if vacuumed == set(tables):
            return
        assert time.monotonic() < deadline, f"not vacuumed: {set(tables) - vacuumed}"
        await asyncio.sleep(0.2)
