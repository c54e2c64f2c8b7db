#!/usr/bin/env python3
"""Find or fetch uv for the Makefile, with nothing but the standard library.

    python3 tools/bootstrap_uv.py --which      print the uv to use (no download)
    python3 tools/bootstrap_uv.py DEST         make sure the pinned uv is at DEST (download if not)

`--which` prints the `uv` on PATH when it is at least MIN_VERSION, else the project-local copy
(.tools/bin/uv). DEST is filled from the pinned wheel of uv on the package index: the one pip and
uv are configured to use (UV_DEFAULT_INDEX, UV_INDEX_URL, PIP_INDEX_URL, pip's config files), else
https://pypi.org/simple. The wheel's SHA-256 must match the one pinned below, whatever the index
says. Nothing outside the project folder is written: no pip, no venv, no sudo, no system Python
packages touched.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import platform
import shutil
import ssl
import stat
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

VERSION = "0.13.9"
# uv on PATH older than this is not used (it may not read a current uv.lock): the pinned one is.
MIN_VERSION = (0, 9, 0)
# sha256 of the wheels, from https://pypi.org/pypi/uv/0.13.9/json. To upgrade: change VERSION,
# take the new digests from that page (or `pip download --no-deps uv==X --platform TAG`), re-run.
WHEELS = {
    ("linux", "x86_64", "gnu"): (
        "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19",
    ),
    ("linux", "x86_64", "musl"): (
        "uv-0.13.9-py3-none-musllinux_1_1_x86_64.whl",
        "2c45530751517d6c3bbc69a19473f6effe47cce047bede01ffd8af7ea7b36b25",
    ),
    # One wheel for glibc and musl on 64-bit ARM.
    ("linux", "aarch64", "gnu"): (
        "uv-0.13.9-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64.whl",
        "5435c5ce14a56431208ca0996416d310f1598e8c2c8ba707688985a16bb82dbe",
    ),
    ("linux", "aarch64", "musl"): (
        "uv-0.13.9-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64.whl",
        "5435c5ce14a56431208ca0996416d310f1598e8c2c8ba707688985a16bb82dbe",
    ),
    ("darwin", "arm64", ""): (
        "uv-0.13.9-py3-none-macosx_11_0_arm64.whl",
        "66c512266d633bef48384a1f53003f41f2a8e7b36fe6e7fbfd3e0fd52d96fa63",
    ),
    ("darwin", "x86_64", ""): (
        "uv-0.13.9-py3-none-macosx_10_12_x86_64.whl",
        "c16ed11e013557536b3e60065f1b912f6407bd6518e041b961e23ef9e6b4fbf5",
    ),
}
DEFAULT_INDEX = "https://pypi.org/simple"
ROOT = Path(__file__).resolve().parent.parent
LOCAL_UV = ROOT / ".tools" / "bin" / "uv"


class BootstrapError(Exception):
    pass


def say(message: str) -> None:
    print(f"bootstrap_uv: {message}", file=sys.stderr)


# --- which uv ---------------------------------------------------------------------------------


def uv_version(path: str | Path) -> tuple[int, ...] | None:
    try:
        out = subprocess.run(  # noqa: S603 (a uv found on PATH or our own copy)
            [str(path), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    # "uv 0.13.9" or "uv 0.13.9 (abc123 2026-11-01)"
    parts = out.split()
    if len(parts) < 2 or parts[0] != "uv":
        return None
    try:
        return tuple(int(p) for p in parts[1].split("+")[0].split("-")[0].split("."))
    except ValueError:
        return None


def which() -> str:
    found = shutil.which("uv")
    if found and Path(found).resolve() != LOCAL_UV.resolve():
        version = uv_version(found)
        if version is not None and version >= MIN_VERSION:
            return found
    return str(LOCAL_UV)


# --- platform ---------------------------------------------------------------------------------


def platform_key() -> tuple[str, str, str]:
    system = sys.platform
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "x64": "x86_64", "arm64": "arm64", "aarch64": "aarch64"}.get(
        machine, machine
    )
    if system.startswith("linux"):
        if machine == "arm64":
            machine = "aarch64"
        musl = platform.libc_ver()[0] != "glibc" and any(Path("/lib").glob("ld-musl-*"))
        libc = "musl" if musl else "gnu"
        return ("linux", machine, libc)
    if system == "darwin":
        if machine == "aarch64":
            machine = "arm64"
        return ("darwin", machine, "")
    return (system, machine, "")


# --- index configuration (the same places pip and uv read) ------------------------------------


def pip_config_files() -> list[Path]:
    """pip's config files, lowest priority first (global, user, site, then PIP_CONFIG_FILE)."""
    home = Path.home()
    files: list[Path] = []
    xdg_dirs = os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    files += [Path(d) / "pip" / "pip.conf" for d in reversed(xdg_dirs.split(os.pathsep)) if d]
    files.append(Path("/etc/pip.conf"))
    if sys.platform == "darwin":
        files.append(Path("/Library/Application Support/pip/pip.conf"))
        files.append(home / "Library" / "Application Support" / "pip" / "pip.conf")
    files.append(home / ".pip" / "pip.conf")
    xdg_home = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    files.append(Path(xdg_home) / "pip" / "pip.conf")
    files.append(Path(sys.prefix) / "pip.conf")
    env_file = os.environ.get("PIP_CONFIG_FILE")
    if env_file and env_file != os.devnull:
        files.append(Path(env_file))
    return files


def pip_config() -> dict[str, str]:
    values: dict[str, str] = {}
    if os.environ.get("PIP_CONFIG_FILE") == os.devnull:
        return values
    for path in pip_config_files():
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (OSError, configparser.Error):
            continue
        for section in ("global", "install"):
            if parser.has_section(section):
                for key, value in parser.items(section):
                    values[key.replace("_", "-")] = value
    return values


def index_urls() -> list[str]:
    """The index to use first, then the extra ones; each tried until the wheel is found."""
    env = os.environ
    conf = pip_config()
    primary = (
        env.get("UV_DEFAULT_INDEX")
        or env.get("UV_INDEX_URL")
        or env.get("PIP_INDEX_URL")
        or conf.get("index-url")
        or DEFAULT_INDEX
    )
    extras = " ".join(
        v
        for v in (
            env.get("UV_INDEX", ""),
            env.get("UV_EXTRA_INDEX_URL", ""),
            env.get("PIP_EXTRA_INDEX_URL", ""),
            conf.get("extra-index-url", ""),
        )
        if v
    ).split()
    urls: list[str] = []
    for url in [primary, *extras]:
        url = url.split("=", 1)[1] if "=" in url.split("://", 1)[0] else url  # uv's name=url
        if url not in urls:
            urls.append(url)
    return urls


def ssl_context() -> ssl.SSLContext:
    # The default context honours SSL_CERT_FILE / SSL_CERT_DIR; pip's own `cert` setting too.
    context = ssl.create_default_context()
    cert = os.environ.get("PIP_CERT") or pip_config().get("cert")
    if cert and Path(cert).exists():
        context.load_verify_locations(
            cafile=cert if Path(cert).is_file() else None,
            capath=cert if Path(cert).is_dir() else None,
        )
    if sys.platform == "darwin" and context.cert_store_stats()["x509_ca"] == 0:
        # python.org's macOS builds ship no CA list until "Install Certificates" is run.
        if Path("/etc/ssl/cert.pem").exists():
            context.load_verify_locations(cafile="/etc/ssl/cert.pem")
    return context


# --- simple API (PEP 503 HTML and PEP 691 JSON) -----------------------------------------------


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href")
            self._text = ""

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href:
            self.links.append((self._text.strip(), self._href))
            self._href = None


def open_url(url: str, context: ssl.SSLContext, accept: str | None = None) -> Any:
    if url.startswith("file:"):
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
        if path.is_dir():
            url = (path / "index.html").as_uri()
    # file: URLs are wanted (pip's indexes may be local folders); the wheel's hash is pinned.
    headers = {"User-Agent": f"alttext-bootstrap-uv/{VERSION}"}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310
    if accept:
        request.add_header("Accept", accept)
    return urllib.request.urlopen(request, timeout=60, context=context)  # noqa: S310


def find_wheel_url(index: str, filename: str, context: ssl.SSLContext) -> str | None:
    page = index.rstrip("/") + "/uv/"
    accept = "application/vnd.pypi.simple.v1+json, text/html;q=0.2"
    try:
        with open_url(page, context, accept) as response:
            body = response.read()
            page = str(response.geturl())
            kind = response.headers.get("Content-Type", "")
    except OSError as exc:
        say(f"{page}: {exc}")
        return None
    if "json" in kind:
        for item in json.loads(body).get("files", []):
            if item.get("filename") == filename:
                return urllib.parse.urljoin(page, str(item["url"]))
        return None
    parser = _Links()
    parser.feed(body.decode("utf-8", "replace"))
    for text, href in parser.links:
        url = urllib.parse.urljoin(page, href)
        name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
        if filename in (text, name):
            return url
    return None


# --- install ----------------------------------------------------------------------------------


def install(dest: Path) -> None:
    if dest.exists() and uv_version(dest) == tuple(int(p) for p in VERSION.split(".")):
        return
    key = platform_key()
    if key not in WHEELS:
        raise BootstrapError(
            f"no pinned uv wheel for {key}; install uv yourself "
            "(https://docs.astral.sh/uv/getting-started/installation/) and run make again"
        )
    filename, sha256 = WHEELS[key]
    context = ssl_context()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tools = dest.parent.parent
    if not (tools / ".gitignore").exists():
        (tools / ".gitignore").write_text("# Made by tools/bootstrap_uv.py\n*\n")
    for index in index_urls():
        url = find_wheel_url(index, filename, context)
        if url is None:
            continue
        say(f"fetching {filename} from {urllib.parse.urlsplit(url).netloc or index}")
        tmp = dest.with_name(dest.name + ".tmp")
        with tempfile.TemporaryFile(dir=dest.parent) as wheel:
            digest = hashlib.sha256()
            try:
                with open_url(url.split("#", 1)[0], context) as response:
                    while chunk := response.read(1 << 20):
                        digest.update(chunk)
                        wheel.write(chunk)
            except OSError as exc:
                say(f"{url}: {exc}")
                continue
            if digest.hexdigest() != sha256:
                raise BootstrapError(
                    f"{filename} from {index} has sha256 {digest.hexdigest()}, pinned {sha256}"
                )
            wheel.seek(0)
            member = f"uv-{VERSION}.data/scripts/uv"
            with (
                zipfile.ZipFile(wheel) as archive,
                archive.open(member) as src,
                open(tmp, "wb") as out,
            ):
                shutil.copyfileobj(src, out)
        tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        os.replace(tmp, dest)
        say(f"uv {VERSION} ready at {dest}")
        return
    raise BootstrapError(
        f"could not fetch {filename} from {', '.join(index_urls())}; "
        "set PIP_INDEX_URL (or UV_DEFAULT_INDEX) to a reachable index, or install uv yourself"
    )


def main(argv: list[str]) -> int:
    if argv == ["--which"]:
        print(which())
        return 0
    if len(argv) != 1 or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        install(Path(argv[0]).absolute())
    except BootstrapError as exc:
        say(str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
