"""An in-memory Provider that replays scripted replies and records every request it got."""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from alttext.describe.providers.base import ModelInfo, ModelReply, ModelRequest

DEFAULT_MODEL = "test/vision-model"

Script = ModelReply | str | BaseException


def answer(
    alt: str | dict[str, str] | None = "A tabby cat asleep on a sunlit windowsill.",
    *,
    role: str = "informative",
    long_description: str | None = None,
    text_in_image: str | None = None,
) -> str:
    """The JSON a well-behaved model returns; ``alt`` as a str is the English text."""
    alt_texts = {"en": alt} if isinstance(alt, str) or alt is None else alt
    return json.dumps(
        {
            "role": role,
            "text_in_image": text_in_image,
            "alt_texts": alt_texts,
            "long_description": long_description,
        }
    )


class ScriptedProvider:
    """Each ``complete`` pops the next scripted item: a reply, content text, or an exception."""

    def __init__(self, *script: Script, name: str = "scripted", model: str = DEFAULT_MODEL) -> None:
        self.name = name
        self.model = model
        self.script: deque[Script] = deque(script)
        self.requests: list[ModelRequest] = []

    async def complete(self, request: ModelRequest) -> ModelReply:
        self.requests.append(request)
        if not self.script:
            raise AssertionError(f"unexpected model call #{len(self.requests)}")
        item = self.script.popleft()
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, str):
            return ModelReply(content=item, model=self.model, provider="Scripted")
        return item

    async def models(self) -> list[ModelInfo]:
        return [ModelInfo(id=self.model, name="Scripted test model")]

    def routing_policy(self) -> dict[str, Any]:
        return {"data_collection": "deny"}

    async def aclose(self) -> None:
        self.script.clear()
