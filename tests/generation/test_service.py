"""generation.service: the memory budget around one generation."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from alttext.describe.image import PreparedImage
from alttext.generation.service import prepared_footprint
from alttext.inflight import EXPANSION
from tests.conftest import Account, Service


def noisy_jpeg(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise((width, height), 80).convert("RGB").save(buf, format="JPEG", quality=95)
    return buf.getvalue()


async def test_the_decode_hold_is_given_back_before_the_model_call(
    service: Service, account: Account
) -> None:
    services = service.app.state.services
    budget = services.inflight
    engine = services.runtime.engine
    real = engine.describe_prepared
    seen: list[tuple[int, PreparedImage]] = []

    async def model_call(prepared: PreparedImage, *args: Any, **kwargs: Any) -> Any:
        seen.append((budget.used - budget.bodies, prepared))  # what the holds keep now
        return await real(prepared, *args, **kwargs)

    engine.describe_prepared = model_call
    image = noisy_jpeg(1600, 1200)
    response = await service.client.post(
        "/v1/alt-text",
        headers=account.headers,
        files={"image": ("a.jpg", image, "image/jpeg")},
    )
    assert response.status_code == 200, response.text
    [(held, prepared)] = seen
    assert held == prepared_footprint(prepared)  # its bytes and pixels only
    assert held < EXPANSION * len(image) / 4
    assert budget.used == 0
