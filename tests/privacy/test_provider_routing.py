"""Nothing personal reaches a model provider, for each provider the service can use.

* **OpenRouter**: every call carries ``provider.data_collection: "deny"``, and ``zdr: true``
  exactly when ``ALTTEXT_ZERO_DATA_RETENTION`` is set; the image the fake decodes has no EXIF
  and no GPS; the account's e-mail, name, id, key, key id, key prefix and key name and the
  upload's file name appear nowhere in the request (body or headers).
* **OpenAI-compatible server**: the same image and account checks, and no ``provider`` object
  (a self-hosted server is not a router).
* **Local engine**: no connection and no name lookup at all during a request, except to the
  database and Redis.

``/readyz`` shows the routing policy in force for each.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image

from alttext.accounts.service import create_account, create_key
from alttext.billing.ledger import grant_starting_credits
from alttext.db import transaction
from tests.conftest import REDIS_URL, Service, openrouter_settings
from tests.fakes.openrouter import FakeOpenRouter
from tests.privacy import nostorage

GPS_IFD = 0x8825
FILENAME = "Jane-Doe-passport-scan.jpg"


@dataclass(frozen=True)
class Person:
    account_id: str
    email: str
    name: str
    key: str
    key_id: str
    key_name: str
    prefix: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def personal(self) -> dict[str, str]:
        return {
            "e-mail": self.email,
            "e-mail local part": self.email.split("@")[0],
            "name": self.name,
            "account id": self.account_id,
            "API key": self.key,
            "key id": self.key_id,
            "key prefix": self.prefix,
            "key name": self.key_name,
            "file name": FILENAME.removesuffix(".jpg"),
        }


async def person(service: Service) -> Person:
    from alttext.accounts.models import ApiKey

    async with transaction(service.app.state.services.sessions) as session:
        account = await create_account(session, "jane.doe.private@example.org", name="Jane Q. Doe")
        await grant_starting_credits(session, account, 10)
        api_key, secret = await create_key(session, account.id, name="Jane's studio laptop")
        stored = await session.get(ApiKey, api_key.id)
        assert stored is not None
    return Person(
        account_id=account.id,
        email=account.email,
        name="Jane Q. Doe",
        key=secret,
        key_id=api_key.id,
        key_name="Jane's studio laptop",
        prefix=stored.prefix,
    )


def photo_with_gps() -> bytes:
    """A JPEG with camera EXIF, a GPS position and the owner's name in the Artist tag."""
    exif = Image.Exif()
    exif[0x010F] = "Jane's Camera Co"  # Make
    exif[0x013B] = "Jane Q. Doe"  # Artist
    exif[GPS_IFD] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 0.0)}
    buf = io.BytesIO()
    nostorage.noise(200).save(buf, format="JPEG", exif=exif, quality=90)
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as check:  # control: the upload really carries them
        assert check.getexif().get_ifd(GPS_IFD)
        assert check.getexif()[0x013B] == "Jane Q. Doe"
    return data


async def describe(service: Service, who: Person) -> dict[str, Any]:
    response = await service.client.post(
        "/v1/alt-text",
        headers=who.headers,
        files={"image": (FILENAME, photo_with_gps(), "image/jpeg")},
        data={"context": "A product photo for a shop page"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_nothing_personal(fake: FakeOpenRouter, who: Person) -> dict[str, Any]:
    """The one chat request: image stripped, no account data anywhere in it."""
    [request] = fake.chat_requests
    [image] = fake.images
    assert image.exif_tags == 0
    assert not image.has_gps
    assert "Jane" not in repr(image.info_keys)
    assert b"Jane" not in image.data  # the Artist tag's text is gone with the EXIF block
    sent = json.dumps(request.json) + json.dumps(request.headers)
    for what, value in who.personal().items():
        assert value not in sent, f"the {what} reached the model provider"
    assert "user" not in request.json  # no end-user identifier either
    assert request.headers["authorization"] == f"Bearer {fake.api_key}"
    body: dict[str, Any] = request.json
    return body


@pytest.mark.parametrize("zdr", [False, True], ids=["default", "zero-data-retention"])
async def test_openrouter_routes_only_to_providers_that_keep_nothing(
    zdr: bool,
    service_factory: Callable[..., Any],
    fake_openrouter: FakeOpenRouter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if zdr:
        monkeypatch.setenv("ALTTEXT_ZERO_DATA_RETENTION", "true")  # the documented variable
    async with service_factory(**openrouter_settings(fake_openrouter)) as service:
        who = await person(service)
        await describe(service, who)
        body = assert_nothing_personal(fake_openrouter, who)
        prefs = body["provider"]
        assert prefs["data_collection"] == "deny"
        assert prefs.get("zdr") is (True if zdr else None)
        # Nothing that could loosen the policy (require_parameters only narrows the choice).
        assert set(prefs) <= {"data_collection", "zdr", "require_parameters"}

        ready = (await service.client.get("/readyz")).json()
        policy = ready["checks"]["provider"]
        assert policy["provider"] == "openrouter"
        assert policy["data_collection"] == "deny"
        assert policy["zdr"] is zdr


async def test_openai_compatible_server_gets_no_router_preferences(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> None:
    settings = {
        "provider": "openai",
        "openai_base_url": fake_openrouter.base_url,
        "openai_api_key": fake_openrouter.api_key,
    }
    async with service_factory(**settings) as service:
        who = await person(service)
        await describe(service, who)
        body = assert_nothing_personal(fake_openrouter, who)
        assert "provider" not in body
        assert "models" not in body  # OpenRouter's fallback list is not sent to a plain server

        policy = (await service.client.get("/readyz")).json()["checks"]["provider"]
        assert policy["provider"] == "openai"
        assert policy["zdr"] is False


def _allowed_endpoints(database_url: str) -> set[tuple[str, int]]:
    """The database and Redis: the only places a local-engine request may connect to."""
    allowed: set[tuple[str, int]] = set()
    for url, default in ((database_url, 5432), (REDIS_URL, 6379)):
        if url and not url.startswith("sqlite"):
            parts = urlsplit(url)
            assert parts.hostname is not None
            allowed.add((parts.hostname, parts.port or default))
    return allowed


def _endpoint(target: Any) -> tuple[str, int] | None:
    """(host, port) of a connect address or a lookup; None for a Unix socket path."""
    if not isinstance(target, tuple) or len(target) < 2:
        return None
    host, port = target[0], target[1]
    host = host.decode() if isinstance(host, bytes) else str(host)
    try:
        return host, int(port)
    except (TypeError, ValueError):
        return host, 0  # a lookup without a port, or a service name: never allowed


async def test_local_engine_makes_no_network_call(
    service_factory: Callable[..., Any], database_url: str
) -> None:
    async with service_factory(provider="local", redis_url=REDIS_URL) as service:
        who = await person(service)
        with nostorage.recording_network() as seen:
            body = await describe(service, who)
        assert body["alt_text"]
        allowed = _allowed_endpoints(database_url)
        outside = [
            (event, target)
            for event, target in seen
            if (endpoint := _endpoint(target)) is not None and endpoint not in allowed
        ]
        assert outside == [], f"the local engine reached out: {outside}"

        policy = (await service.client.get("/readyz")).json()["checks"]["provider"]
        assert policy == {"status": "ok", "provider": "local", "data_leaves_process": False}


def test_network_witness_sees_a_connection() -> None:
    """Control: a connection attempt and a name lookup are recorded."""
    with nostorage.recording_network() as seen, socket.socket() as sock:
        sock.settimeout(0.2)
        with contextlib.suppress(OSError):  # refused or not, the attempt is what counts
            sock.connect(("127.0.0.1", 9))
        socket.getaddrinfo("localhost", 80)
    assert ("socket.connect", ("127.0.0.1", 9)) in seen
    assert any(event == "socket.getaddrinfo" and target[0] == "localhost" for event, target in seen)
    assert _endpoint(("127.0.0.1", 9)) == ("127.0.0.1", 9)
    assert _endpoint(("localhost", None)) == ("localhost", 0)
