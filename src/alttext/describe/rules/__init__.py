"""The deterministic rules of docs/alt-text-guide.md, applied to every model answer.

One module per job, applied in this order by the engine:

* :mod:`.clean` makes the repairs that never change meaning (wrappers, Markdown, HTML, emoji,
  redundant openings such as "The image shows", a missing final period);
* :mod:`.checks` reports every rule a text still breaks, with :mod:`.language` (rule 10, the
  language identifier) and :mod:`.people` (rule 9) as its specialised parts;
* :mod:`.repair` is the last resort after the re-ask: it removes what can be removed and
  cuts with :mod:`.cut` at the best boundary (sentence, line, clause, subject, word), never on
  a dangling word.

:mod:`.findings` holds the result types and the catalogue of rule codes, :mod:`.text` the
tokenising every module shares, :mod:`.wordlists` the function words per language that both the
language check and the cut rely on. Code outside the package imports from the package itself, so
the split stays free to change.
"""

from __future__ import annotations

from alttext.describe.rules.checks import check, copies_context, quote_in_ocr
from alttext.describe.rules.clean import clean, ensure_end, strip_openings
from alttext.describe.rules.cut import cut
from alttext.describe.rules.findings import Finding, RuleContext, Severity, finding
from alttext.describe.rules.language import LanguageIdentifier, detect_language, wrong_language
from alttext.describe.rules.repair import repair
from alttext.describe.rules.text import quoted_spans

__all__ = [
    "Finding",
    "LanguageIdentifier",
    "RuleContext",
    "Severity",
    "check",
    "clean",
    "copies_context",
    "cut",
    "detect_language",
    "ensure_end",
    "finding",
    "quote_in_ocr",
    "quoted_spans",
    "repair",
    "strip_openings",
    "wrong_language",
]
