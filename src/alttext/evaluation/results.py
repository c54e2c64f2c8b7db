"""What one model did on one case: the raw material every metric is computed from."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

CostSource = Literal["reported", "pricing"]


@dataclass(frozen=True)
class CaseResult:
    """One case run through the engine with one model.

    ``first_*`` and ``findings`` describe the model's own first answer, before the engine
    cleans, re-asks or repairs it; everything else describes what a caller would receive.
    """

    case_id: str
    model: str | None  # as requested; None: the configured chain
    latency_ms: float = 0.0
    error: str | None = None  # the error code when no alt text came back
    error_detail: str | None = None
    answered_by: str | None = None
    alt_text: str | None = None
    role: str | None = None
    needs_review: bool = False
    attempts: int = 0
    first_text: str | None = None
    first_role: str | None = None
    findings: tuple[str, ...] = ()  # rule codes raised by the first answer
    language_expected: str | None = None  # the identifier's label; None if it lacks the language
    language_detected: str | None = None  # None: too short to judge
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    cost_source: CostSource | None = None

    @property
    def answered(self) -> bool:
        return self.error is None and self.alt_text is not None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["findings"] = list(self.findings)
        return out
