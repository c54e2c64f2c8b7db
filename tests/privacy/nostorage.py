"""Witnesses for the no-storage promise, shared by the privacy suite and tests/api/test_no_disk.py.

* **Files**: a process-wide audit hook (``sys.addaudithook``, installed once, inert unless a
  test is recording) records every ``open`` that writes or creates (``w``/``a``/``x``/``+``
  modes, ``O_WRONLY``/``O_RDWR``/``O_CREAT``/``O_TMPFILE`` flags), every
  ``tempfile.mkstemp``/``mkdtemp`` and every rename, link, truncate or ``shutil`` copy/move, from
  any thread; a spy on ``SpooledTemporaryFile`` wherever it is imported; a private
  ``tempfile.gettempdir()`` listed before and after; and ``/proc/self/fd`` checked for new
  descriptors on deleted or temporary files.
* **Network**: the same hook records ``socket.connect`` and ``socket.getaddrinfo`` when asked.
* **Database**: every column of every row of every table (and, for SQLite, the database files
  themselves) searched for needles cut from the image.
* **Logs**: every record reaching the root logger at DEBUG, and the app's own JSON log stream.
* **Memory**: weak references to every PIL image made, tracemalloc for large live allocations,
  and a walk of every object the garbage collector knows for strings holding image bytes.

SQLite writes through C, below the audit hook, so the only files allowed to be written are the
test database and its ``-wal``/``-shm``/``-journal`` siblings; their content is searched instead.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import io
import logging
import os
import sys
import tempfile
import threading
import tracemalloc
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alttext.logging_setup import JsonFormatter

# -- the audit hook --------------------------------------------------------------------------------

_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_PATH_EVENTS = {
    # event -> index of the argument naming the file written or created
    "tempfile.mkstemp": 0,
    "tempfile.mkdtemp": 0,
    "os.rename": 1,
    "os.link": 1,
    "os.symlink": 1,
    "os.truncate": 0,
    "os.mkdir": 0,
    "shutil.copyfile": 1,
    "shutil.copytree": 1,
    "shutil.move": 1,
    "shutil.make_archive": 0,
}
_NET_EVENTS = {"socket.connect": 1, "socket.getaddrinfo": None}
_recording: list[tuple[str, str]] | None = None
_net_recording: list[tuple[str, Any]] | None = None
_hook_installed = False


def _writes(mode: object, flags: object) -> bool:
    if isinstance(mode, str) and any(c in mode for c in "wax+"):
        return True
    if isinstance(flags, int):
        if flags & _WRITE_FLAGS:
            return True
        # O_TMPFILE contains O_DIRECTORY's bit: only the whole value means "temporary file".
        return bool(_O_TMPFILE) and flags & _O_TMPFILE == _O_TMPFILE
    return False


def _name(value: object) -> str:
    return os.fsdecode(value) if isinstance(value, str | bytes) else repr(value)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    files, net = _recording, _net_recording
    if files is None and net is None:
        return
    try:
        if net is not None and event in _NET_EVENTS:
            index = _NET_EVENTS[event]
            net.append((event, args[index] if index is not None else args[:2]))
        if files is None:
            return
        if event == "open":
            path, mode, flags = ((*tuple(args), None, None, None))[:3]
            if _writes(mode, flags):
                files.append((event, _name(path)))
        elif event in _PATH_EVENTS:
            files.append((event, _name(args[_PATH_EVENTS[event]])))
    except Exception:  # an audit hook must never break the code it watches
        if files is not None:
            files.append((event, "<unparsed>"))


def _install_hook() -> None:
    global _hook_installed
    if not _hook_installed:  # audit hooks cannot be removed: one per process, inert by default
        sys.addaudithook(_audit)
        _hook_installed = True


@dataclass
class Witness:
    writes: list[tuple[str, str]] = field(default_factory=list)
    spooled: list[str] = field(default_factory=list)


@contextmanager
def recording(witness: Witness) -> Iterator[None]:
    global _recording
    _install_hook()
    _recording = witness.writes
    try:
        yield
    finally:
        _recording = None


@contextmanager
def recording_network() -> Iterator[list[tuple[str, Any]]]:
    """Every ``socket.connect`` (address) and ``socket.getaddrinfo`` ((host, port)) in the block."""
    global _net_recording
    _install_hook()
    seen: list[tuple[str, Any]] = []
    _net_recording = seen
    try:
        yield seen
    finally:
        _net_recording = None


def make_witness(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Witness:
    """Spy on SpooledTemporaryFile everywhere and give the process a private temp folder."""
    found = Witness()
    original = tempfile.SpooledTemporaryFile

    class SpyingSpooledTemporaryFile(original):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            found.spooled.append(f"SpooledTemporaryFile(max_size={kwargs.get('max_size')})")
            super().__init__(*args, **kwargs)

    for module in list(sys.modules.values()):
        if getattr(module, "SpooledTemporaryFile", None) is original:
            monkeypatch.setattr(module, "SpooledTemporaryFile", SpyingSpooledTemporaryFile)
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    monkeypatch.setenv("TMPDIR", str(private))
    return found


def sqlite_files(database_url: str) -> list[Path]:
    """The SQLite database and its siblings (none for PostgreSQL)."""
    prefix = "sqlite+aiosqlite:///"
    if not database_url.startswith(prefix):
        return []
    db = database_url[len(prefix) :]
    return [Path(f"{db}{suffix}") for suffix in ("", "-wal", "-shm", "-journal")]


def allowed_writes(database_url: str) -> Callable[[str], bool]:
    """The SQLite database and its siblings; bytecode caches (never image data)."""
    names = {str(p) for p in sqlite_files(database_url)}

    def allowed(path: str) -> bool:
        return path in names or f"{os.sep}__pycache__{os.sep}" in path or path == os.devnull

    return allowed


def open_files() -> dict[int, str]:
    """This process's descriptors and what they point to (Linux; empty elsewhere)."""
    out: dict[int, str] = {}
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return out
    for name in names:
        # A descriptor may close in between (the listing's own, another thread's).
        with contextlib.suppress(OSError):
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return out


def assert_no_new_file_descriptors(before: dict[int, str], database_url: str) -> None:
    """No descriptor opened since ``before`` points to a deleted, temporary or other file."""
    allowed = {str(p) for p in sqlite_files(database_url)}
    temp = tempfile.gettempdir()
    for fd, target in open_files().items():
        if before.get(fd) == target:
            continue
        assert not target.endswith("(deleted)"), f"fd {fd} is an unlinked file: {target}"
        assert not target.startswith(temp), f"fd {fd} is a temporary file: {target}"
        if target.startswith(os.sep) and target not in allowed and target != os.devnull:
            raise AssertionError(f"fd {fd} is a file opened by the request: {target}")


# -- images with a marker --------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes
    marker: bytes
    mime: str = "image/png"

    @property
    def b64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    @property
    def data_uri(self) -> str:
        return f"data:{self.mime};base64,{self.b64}"

    def truncated(self) -> Upload:
        return Upload(f"{self.name}-truncated", self.data[: len(self.data) * 3 // 4], self.marker)

    def needles(self) -> dict[str, bytes]:
        """Byte strings that must appear nowhere we store anything."""
        middle = len(self.data) // 2
        b64 = self.b64
        run = min(4096, len(self.data) // 4)
        return {
            "marker": self.marker,
            "marker-hex": self.marker.hex().encode(),
            "marker-base64": base64.b64encode(self.marker).decode().rstrip("=").encode(),
            "marker-repr": repr(self.marker[:12])[2:-1].encode(),
            "raw-4k": self.data[middle : middle + run],
            "base64-4k": b64[len(b64) // 2 : len(b64) // 2 + run].encode(),
            "base64-prefix": b64[:48].encode(),
        }


def noise(side: int, mode: str = "RGB") -> Image.Image:
    channels = len(mode)
    return Image.frombytes(mode, (side, side), os.urandom(side * side * channels))


def marked_png(side: int = 224, *, compress_level: int = 6) -> Upload:
    """Random pixels, and a 32-byte random marker raw in a private chunk and as hex in tEXt."""
    marker = os.urandom(32)
    info = PngInfo()
    info.add(b"mrKr", marker)
    info.add_text("Comment", marker.hex())
    buf = io.BytesIO()
    noise(side).save(buf, format="PNG", pnginfo=info, compress_level=compress_level)
    upload = Upload(f"png{side}", buf.getvalue(), marker)
    assert marker in upload.data
    assert marker.hex().encode() in upload.data
    return upload


def marked_jpeg(side: int = 224) -> Upload:
    """Random pixels as a JPEG (decoded by OpenCV on the way to the model), with a 32-byte
    random marker raw in a comment segment and as hex in the EXIF description."""
    marker = os.urandom(32)
    exif = Image.Exif()
    exif[0x010E] = marker.hex()  # ImageDescription
    buf = io.BytesIO()
    noise(side).save(buf, format="JPEG", quality=90, comment=marker, exif=exif.tobytes())
    upload = Upload(f"jpeg{side}", buf.getvalue(), marker, mime="image/jpeg")
    assert marker in upload.data
    assert marker.hex().encode() in upload.data
    return upload


# -- files written below Python (C libraries) ----------------------------------------------------

_IN_MODIFY, _IN_CLOSE_WRITE, _IN_MOVED_TO, _IN_CREATE = 0x2, 0x8, 0x80, 0x100


@contextmanager
def watching(folders: Iterable[Path]) -> Iterator[list[str]]:
    """Every file created, written or moved into ``folders`` while the block runs, as
    ``folder/name``, seen by the kernel (inotify): what C code writes and deletes again,
    below the audit hook and gone before any listing, shows here too. Linux only."""
    import ctypes
    import struct

    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1")
    seen: list[str] = []
    try:
        paths: dict[int, Path] = {}
        for folder in folders:
            mask = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE
            wd = libc.inotify_add_watch(fd, os.fsencode(folder), mask)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder}")
            paths[wd] = folder
        yield seen
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            data = b""
        at = 0
        while at + 16 <= len(data):
            wd, _mask, _cookie, size = struct.unpack_from("iIII", data, at)
            name = data[at + 16 : at + 16 + size].rstrip(b"\0").decode(errors="replace")
            seen.append(f"{paths.get(wd, '?')}/{name}")
            at += 16 + size
    finally:
        os.close(fd)


# -- the database ------------------------------------------------------------------------------


async def stored_bytes(
    sessions: async_sessionmaker[AsyncSession], database_url: str
) -> dict[str, bytes]:
    """Every row of every table, and for SQLite the database files themselves."""
    found: dict[str, bytes] = {}
    async with sessions() as session:
        conn = await session.connection()
        tables: list[str] = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        for table in tables:
            rows = (await conn.execute(text(f'SELECT * FROM "{table}"'))).all()
            parts: list[bytes] = []
            for row in rows:
                for value in row:
                    if isinstance(value, bytes | bytearray | memoryview):
                        parts.append(bytes(value))
                    elif value is not None:
                        parts.append(str(value).encode("utf-8", "surrogatepass"))
            found[f"table {table}"] = b"\x00".join(parts)
    files = sqlite_files(database_url)
    for path in files:
        if path.exists():
            found[f"file {path.name}"] = path.read_bytes()
    if files:
        assert f"file {files[0].name}" in found
    assert any(name.startswith("table ") for name in found)
    return found


def assert_absent(haystacks: dict[str, bytes], *uploads: Upload) -> None:
    for upload in uploads:
        for needle_name, needle in upload.needles().items():
            for where, data in haystacks.items():
                assert needle not in data, f"{upload.name} {needle_name} found in {where}"


async def assert_not_stored(
    sessions: async_sessionmaker[AsyncSession],
    database_url: str,
    email: str,
    *uploads: Upload,
) -> None:
    stored = await stored_bytes(sessions, database_url)
    # Control: the scan reads real content (the account's e-mail is stored in plain text).
    assert any(email.encode() in data for data in stored.values())
    assert_absent(stored, *uploads)


async def redis_values(url: str, namespace: str = "alttext") -> dict[str, bytes]:
    """Every key under ``namespace:`` with its value, whatever its type."""
    from redis.asyncio import Redis

    client: Any = Redis.from_url(url)  # decode_responses=False: every reply is bytes
    out: dict[str, bytes] = {}
    try:
        async for raw_key in client.scan_iter(match=f"{namespace}:*"):
            key = raw_key.decode()
            kind = (await client.type(raw_key)).decode()
            value: Any
            if kind == "string":
                value = [await client.get(raw_key)]
            elif kind == "zset":
                value = [
                    m
                    for pair in await client.zrange(raw_key, 0, -1, withscores=True)
                    for m in (pair[0], str(pair[1]).encode())
                ]
            elif kind == "hash":
                value = [b for kv in (await client.hgetall(raw_key)).items() for b in kv]
            elif kind in ("set",):
                value = list(await client.smembers(raw_key))
            elif kind == "list":
                value = list(await client.lrange(raw_key, 0, -1))
            else:
                value = [kind.encode()]
            out[f"redis {key}"] = (
                raw_key
                + b"\x00"
                + b"\x00".join(
                    v if isinstance(v, bytes) else str(v).encode() for v in value if v is not None
                )
            )
    finally:
        await client.aclose()
    return out


# -- logs ------------------------------------------------------------------------------------------


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._lock_records = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock_records:
            self.records.append(record)


@dataclass
class LogCapture:
    records: list[logging.LogRecord]
    stream: io.StringIO

    def texts(self) -> list[str]:
        """Each record as everything a handler could write: message, extras, traceback, JSON."""
        plain = logging.Formatter()
        out = []
        for record in self.records:
            parts = [record.getMessage(), JsonFormatter().format(record)]
            parts += [f"{k}={v!r}" for k, v in record.__dict__.items() if k != "exc_info"]
            if record.exc_info:
                parts.append(plain.formatException(record.exc_info))
            out.append("\n".join(parts))
        return out

    def all_text(self) -> str:
        return "\n".join([*self.texts(), self.stream.getvalue()])

    def access(self) -> list[logging.LogRecord]:
        return [r for r in self.records if r.name == "alttext.access"]


def _swap_stream(handler: logging.Handler, stream: Any) -> Any:
    handler.acquire()
    try:
        old = handler.stream  # type: ignore[attr-defined]
        handler.stream = stream  # type: ignore[attr-defined]
        return old
    finally:
        handler.release()


@contextmanager
def capture_logs() -> Iterator[LogCapture]:
    """Every record reaching the root logger at DEBUG, and the app's own JSON stream."""
    root = logging.getLogger()
    handler = _ListHandler()
    stream = io.StringIO()
    app_handlers = [h for h in root.handlers if getattr(h, "_alttext", False)]
    assert app_handlers, "the app's log handler is not installed (create the app first)"
    old_level = root.level
    # Swapped without setStream(): that flushes the old stream, which pytest may have closed.
    old_streams = [_swap_stream(h, stream) for h in app_handlers]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield LogCapture(handler.records, stream)
    finally:
        root.setLevel(old_level)
        root.removeHandler(handler)
        for h, old in zip(app_handlers, old_streams, strict=True):
            _swap_stream(h, old)


def assert_text_free_of(text_: str, forbidden: dict[str, str], where: str) -> None:
    for name, value in forbidden.items():
        assert value not in text_, f"{name} ({value[:40]!r}) found in {where}"


def text_needles(*uploads: Upload) -> dict[str, str]:
    return {
        f"{u.name} {name}": needle.decode("latin-1")
        for u in uploads
        for name, needle in u.needles().items()
        if name != "marker"  # raw bytes: covered by the repr and text forms in text sinks
    }


# -- memory ----------------------------------------------------------------------------------------


@contextmanager
def tracking_images(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[weakref.ref[Image.Image]]]:
    """Weak references to every PIL image constructed in the block (any thread)."""
    refs: list[weakref.ref[Image.Image]] = []
    lock = threading.Lock()
    original = Image.Image.__init__

    def init(self: Image.Image, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        with lock:
            refs.append(weakref.ref(self))

    with monkeypatch.context() as patch:
        patch.setattr(Image.Image, "__init__", init)
        yield refs


def live_images(refs: Iterable[weakref.ref[Image.Image]]) -> list[Image.Image]:
    gc.collect()
    return [img for ref in refs if (img := ref()) is not None]


@contextmanager
def tracing_allocations(frames: int = 8) -> Iterator[list[tracemalloc.Snapshot]]:
    """Trace allocations in the block; the snapshot (after ``gc.collect()``) holds what is still
    alive of them. Only allocations made after the start are traced, so nothing older shows."""
    out: list[tracemalloc.Snapshot] = []
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start(frames)
    try:
        yield out
        gc.collect()
        out.append(tracemalloc.take_snapshot())
    finally:
        if not was_tracing:
            tracemalloc.stop()


def large_allocations(snapshot: tracemalloc.Snapshot, at_least: int) -> list[str]:
    return [
        f"{trace.size} bytes from\n" + "\n".join(trace.traceback.format())
        for trace in snapshot.traces
        if trace.size >= at_least
    ]


def live_copies(needles: dict[str, bytes], keep: Iterable[object] = ()) -> list[str]:
    """Strings, bytes and buffers the garbage collector can reach that hold a needle.

    Bytes and str are not tracked by the collector themselves, so the referents of every
    tracked object (containers, instances, coroutine and frame locals) are inspected.
    ``keep``: objects the test holds on purpose (the needles themselves are always skipped).
    """
    gc.collect()
    skip = {id(n) for n in needles.values()} | {id(k) for k in keep}
    shortest = min(len(n) for n in needles.values())
    kinds = (bytes, bytearray, str, memoryview)
    candidates: dict[int, Any] = {}
    for obj in gc.get_referents(*gc.get_objects()):
        if type(obj) in kinds and id(obj) not in skip:
            with contextlib.suppress(ValueError):  # a released memoryview has no length
                if len(obj) >= shortest:
                    candidates[id(obj)] = obj
    text_forms = {name: n.decode("latin-1") for name, n in needles.items()}
    found: list[str] = []
    for obj in candidates.values():
        if isinstance(obj, str):
            hits = [name for name, n in text_forms.items() if n in obj]
        else:
            raw = obj.tobytes() if isinstance(obj, memoryview) else obj
            hits = [name for name, n in needles.items() if n in raw]
        if hits:
            holders = [type(r).__name__ for r in gc.get_referrers(obj)][:5]
            found.append(f"{type(obj).__name__} of {len(obj)} holding {hits}, held by {holders}")
    return found
