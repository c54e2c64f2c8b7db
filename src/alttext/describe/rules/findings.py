"""What a rule reports and what it judges against, plus the one catalogue of rule codes.

The catalogue is a single table so that a code always has the same severity and wording, wherever
it is raised: the messages go both into the re-ask prompt and into ``review_reasons``, so they
never quote the alt text itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from alttext.describe.types import DEFAULT_MAX_LENGTH, ResolvedRole

# ``check``: the engine asks the model again (or repairs); ``flag``: only a human can judge.
Severity = Literal["check", "flag"]


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    message: str


@dataclass(frozen=True)
class RuleContext:
    role: ResolvedRole
    max_length: int = DEFAULT_MAX_LENGTH
    language: str = "en"
    context: str | None = None
    keywords: tuple[str, ...] = ()
    # Text local OCR read in the image; None when OCR did not run.
    ocr_text: str | None = None


# Every finding's severity and message.
_RULES: dict[str, tuple[Severity, str]] = {
    "decorative_not_empty": ("check", 'a decorative image must have an empty alt text ("")'),
    "empty": ("check", "the alt text is empty, but the image is not decorative"),
    "redundant_opening": (
        "check",
        'the text opens with a redundant phrase such as "Image of" or "The image shows"; '
        "start with the content",
    ),
    "wrapper": ("check", 'the text has a label such as "Alt text:" or surrounding quotes'),
    "markdown": ("check", "the text contains Markdown formatting"),
    "html": ("check", "the text contains HTML"),
    "line_break": ("check", "the text contains line breaks"),
    "emoji": ("check", "the text contains emoji"),
    "url": ("check", "the text contains a URL"),
    "file_name": ("check", "the text contains a file name"),
    "camera_details": ("check", "the text contains camera details (model or settings)"),
    "camera_name": ("flag", "mentions a camera model; check it is the subject, not photo metadata"),
    "placeholder": (
        "check",
        'the text is only a placeholder word such as "image"; describe what matters',
    ),
    "functional_describes_icon": (
        "check",
        'a link or button image needs the action or destination (such as "Search"), '
        "not a description of the icon",
    ),
    "too_long": ("check", "the text is {length} characters long; the limit is {limit}"),
    "no_end_punctuation": ("check", 'the sentence does not end with ".", "!" or "?"'),
    "copies_context": ("check", "the text copies the supplied context; say what the image adds"),
    "captcha_transcribed": (
        "check",
        "the text transcribes a CAPTCHA; state its purpose, never its characters",
    ),
    "quote_not_in_image": (
        "check",
        "quoted text was not found in the image; quote only text that is legible in it",
    ),
    "quote_unverified": (
        "flag",
        "quoted text could not be confirmed by OCR; check it is in the image",
    ),
    "wrong_language": (
        "check",
        "the text is not in the requested language {language} (it reads as {detected})",
    ),
    "repeated_word": ("flag", "a word is used more than twice; check for keyword stuffing"),
    "keyword_stuffing": (
        "flag",
        "the text reads as a list of keywords; use keywords only where they truthfully fit",
    ),
    "hedge": ("flag", 'the text hedges ("appears to", "possibly"); check the uncertain detail'),
    "person_attributes": (
        "flag",
        "describes a person's {kinds}; check it is observable and relevant",
    ),
    "person_name": (
        "flag",
        "names a person not named in the context; a name must come from the context, "
        "never from a face",
    ),
}


def finding(code: str, **values: object) -> Finding:
    severity, message = _RULES[code]
    return Finding(code, severity, message.format(**values))
