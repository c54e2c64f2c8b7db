"""Measure the language check on the corpus and write the table into docs/quality.md.

Run ``.venv/bin/python -m tests.describe.rules.language_table`` after changing the rule or the
corpus: it replaces the section "## Language check" of docs/quality.md and leaves every other
section alone. ``test_language_corpus.py`` fails while the page and the measurement disagree,
so the numbers on the page are always the ones the tests see. No ``make bench`` is needed: the
identifier is local and deterministic.
"""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from alttext.describe.rules import LanguageIdentifier, wrong_language
from alttext.describe.rules.language import CLOSE_GROUPS, MIN_PROBABILITY
from tests.describe.rules.language_corpus import CORPUS, Case, cases, close_cases

QUALITY_PAGE = Path(__file__).resolve().parents[3] / "docs" / "quality.md"
HEADING = "## Language check"

NAMES = {
    "en": "English", "de": "German", "fr": "French", "es": "Spanish", "gl": "Galician",
    "ca": "Catalan", "pt": "Portuguese", "it": "Italian", "nl": "Dutch", "nb": "Norwegian",
    "da": "Danish", "sv": "Swedish", "fi": "Finnish", "pl": "Polish", "cs": "Czech",
    "hr": "Croatian", "sr": "Serbian", "bs": "Bosnian", "tr": "Turkish", "hu": "Hungarian",
    "ru": "Russian", "uk": "Ukrainian", "el": "Greek", "ar": "Arabic", "he": "Hebrew",
    "hi": "Hindi", "ja": "Japanese", "zh": "Chinese", "ko": "Korean", "th": "Thai",
    "vi": "Vietnamese",
}  # fmt: skip


@dataclass
class Row:
    tag: str
    texts: int = 0
    right: int = 0
    passed: int = 0
    wrong: int = 0
    caught: int = 0


@dataclass
class Measurement:
    rows: dict[str, Row]
    false_alarms: list[Case] = field(default_factory=list)
    misses: list[Case] = field(default_factory=list)
    close_total: int = 0
    close_passed: int = 0

    @property
    def right(self) -> int:
        return sum(r.right for r in self.rows.values())

    @property
    def wrong(self) -> int:
        return sum(r.wrong for r in self.rows.values())

    @property
    def catch_rate(self) -> float:
        return 1 - len(self.misses) / self.wrong

    @property
    def false_alarm_rate(self) -> float:
        return len(self.false_alarms) / self.right


def measure(identifier: LanguageIdentifier) -> Measurement:
    rows = {tag: Row(tag, texts=len(texts)) for tag, texts in CORPUS.items()}
    result = Measurement(rows)
    for case in cases():
        row = rows[case.written_in]
        flagged = wrong_language(case.text, case.requested, identifier) is not None
        if case.right:
            row.right += 1
            row.passed += not flagged
            if flagged:
                result.false_alarms.append(case)
        else:
            row.wrong += 1
            row.caught += flagged
            if not flagged:
                result.misses.append(case)
    for case in close_cases():
        result.close_total += 1
        result.close_passed += wrong_language(case.text, case.requested, identifier) is None
    return result


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def _wrap(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(
        text, 100, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False
    )


def render(m: Measurement) -> str:
    """The section, from its heading to the end of its text (ends with one newline)."""
    groups = ", ".join("/".join(sorted(g)) for g in CLOSE_GROUPS)
    intro = [
        "Rule 10 of the alt-text guide: the text must be in the requested language. The check "
        "asks how likely the *requested* language is, not whether another one is certain: a "
        "text fails when the requested language, together with the languages a few words "
        f"cannot tell apart from it, keeps less than {MIN_PROBABILITY:.0%} of the language "
        "identifier's (py3langid) belief. A failing text is re-asked once in that language, "
        "then returned with `needs_review` and the reason. Quotes from the image, numbers, "
        "acronyms and names are left out of the judgement, and texts with fewer than 4 words "
        "left are not judged. Two second opinions: a text without one letter of the requested "
        "language's script fails outright, and one using two function words only the requested "
        "language has passes whatever its loanwords (“Croissant and café au lait on a bistro "
        "table.”).",
        f"Corpus: {sum(r.texts for r in m.rows.values())} short alt texts (4-20 words) in "
        f"{len(m.rows)} languages, in `tests/describe/rules/language_corpus.py`. Each is "
        "checked as its own language (it must pass) and as two wrong ones outside its close "
        "group (it must fail): a non-English text as `en` and one other, an English text as "
        "two others. Targets (asserted by `tests/describe/rules/test_language_corpus.py`): "
        "catch >= 95 % of wrong-language texts with <= 2 % false alarms.",
        f"**Caught {m.wrong - len(m.misses)} of {m.wrong} wrong-language texts "
        f"({_pct(m.catch_rate)}); false alarms on {len(m.false_alarms)} of {m.right} "
        f"right ones ({_pct(m.false_alarm_rate)}).**",
    ]
    lines = [HEADING, ""]
    for paragraph in intro:
        lines += [*_wrap(paragraph), ""]
    lines += [
        "| language | tag | texts | right language passed | wrong language caught |",
        "|---|---|---:|---:|---:|",
    ]
    for tag, row in m.rows.items():
        lines.append(
            f"| {NAMES.get(tag, tag)} | `{tag}` | {row.texts} | {row.passed}/{row.right} "
            f"| {row.caught}/{row.wrong} |"
        )
    lines += [
        f"| **all** | | {sum(r.texts for r in m.rows.values())} | "
        f"{m.right - len(m.false_alarms)}/{m.right} | {m.wrong - len(m.misses)}/{m.wrong} |",
        "",
        *_wrap(
            f"Close groups (as the identifier names languages; `no` is Bokmål): {groups}. A "
            "text passes a request for any language of a group it shares. Checked as the close "
            f"languages of the corpus, {m.close_passed} of {m.close_total} texts passed (not "
            "scored: either outcome is allowed)."
        ),
        "",
    ]
    if m.misses or m.false_alarms:
        lines.append("Misses and false alarms:")
        lines.append("")
        for c in m.misses:
            name = NAMES.get(c.written_in, c.written_in)
            lines += _wrap(f"- missed: {name} text requested as `{c.requested}`: “{c.text}”", "  ")
        for c in m.false_alarms:
            name = NAMES.get(c.written_in, c.written_in)
            lines += _wrap(f"- false alarm: {name}: “{c.text}”", "  ")
        lines.append("")
    lines.append(
        "Regenerate with `.venv/bin/python -m tests.describe.rules.language_table` after "
        "changing the rule or the corpus."
    )
    return "\n".join(lines) + "\n"


def _bounds(page: str) -> tuple[int, int] | None:
    """Where the section starts and where the next ``## `` section starts (or the page ends)."""
    start = page.find(HEADING + "\n")
    if start < 0:
        return None
    end = page.find("\n## ", start + len(HEADING))
    return start, end + 1 if end >= 0 else len(page)


def current_section(page: str) -> str | None:
    """The section's text in ``page`` without trailing blank lines, None if absent."""
    bounds = _bounds(page)
    if bounds is None:
        return None
    return page[bounds[0] : bounds[1]].rstrip("\n") + "\n"


def replace_section(page: str, section: str) -> str:
    """``page`` with the section replaced, or appended when it is missing; the rest unchanged."""
    bounds = _bounds(page)
    if bounds is None:
        return page.rstrip("\n") + "\n\n" + section
    start, end = bounds
    rest = page[end:]
    return page[:start] + section + ("\n" + rest if rest else "")


def main() -> int:
    section = render(measure(LanguageIdentifier()))
    page = QUALITY_PAGE.read_text(encoding="utf-8") if QUALITY_PAGE.exists() else ""
    QUALITY_PAGE.write_text(replace_section(page, section), encoding="utf-8")
    print(f"wrote {HEADING!r} to {QUALITY_PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
