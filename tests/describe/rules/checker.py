"""``check`` bound to the session's language identifier, with findings as sets of codes."""

from __future__ import annotations

from dataclasses import dataclass

from alttext.describe.rules import Finding, LanguageIdentifier, RuleContext, check

INFO = RuleContext(role="informative")


@dataclass(frozen=True)
class Checker:
    identifier: LanguageIdentifier

    def __call__(self, text: str, ctx: RuleContext = INFO) -> list[Finding]:
        return check(text, ctx, self.identifier)

    def codes(self, text: str, ctx: RuleContext = INFO) -> set[str]:
        return {f.code for f in self(text, ctx)}

    def failed(self, text: str, ctx: RuleContext = INFO) -> set[str]:
        return {f.code for f in self(text, ctx) if f.severity == "check"}

    def flagged(self, text: str, ctx: RuleContext = INFO) -> set[str]:
        return {f.code for f in self(text, ctx) if f.severity == "flag"}
