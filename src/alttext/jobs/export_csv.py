"""A job's results as CSV (API.md "?format=csv"): one writer for the API's download and the
dashboard's, so both files have the same columns and the same cell formatting.

Rows are read a page at a time (``service.all_results``) and handed out in chunks of about
64 KB, so a 10,000-row download never holds a transaction or the whole job in memory.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alttext.jobs import service
from alttext.jobs.schemas import CSV_COLUMNS, JobResult

CHUNK_CHARS = 64 * 1024


def csv_row(result: JobResult) -> list[str]:
    """One result's cells in ``CSV_COLUMNS`` order: reasons joined by ``;``, the problem as
    JSON, booleans as ``true``/``false``, nothing for null."""
    values = result.model_dump(mode="json")
    out = []
    for column in CSV_COLUMNS:
        value = values.get(column)
        if column == "review_reasons":
            value = ";".join(value or [])
        elif column == "problem":
            value = json.dumps(value) if value else ""
        elif isinstance(value, bool):
            value = "true" if value else "false"
        out.append("" if value is None else str(value))
    return out


async def csv_chunks(
    sessions: async_sessionmaker[AsyncSession], account_id: str, job_id: str
) -> AsyncIterator[str]:
    """The header and every result row of ``job_id`` as CSV text, in item order. Check the
    job's ownership before streaming: a stream that started cannot turn into a 404."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    async for result in service.all_results(sessions, account_id, job_id):
        writer.writerow(csv_row(result))
        if buffer.tell() > CHUNK_CHARS:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
