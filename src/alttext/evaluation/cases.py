"""An evaluation set: cases (image, context, role, language, reference alt text) and licences.

A set is a folder with a ``cases.json`` and the images it names (paths relative to the folder)::

    {
      "name": "my-shop",
      "images": {"images/shoe.jpg": {"licence": "CC0-1.0", "source": "our photo"}},
      "cases": [
        {"id": "shoe-en", "image": "images/shoe.jpg", "language": "en",
         "role": "auto", "expected_role": "informative",
         "context": "Trail running shoe, women's",
         "reference": "Blue trail running shoe with a thick lugged sole, side view."}
      ]
    }

``role`` is what the caller asks the engine for (``auto`` lets the model decide) and
``expected_role`` the right answer (required with ``auto``; otherwise it is ``role``).
``reference`` is a human-written alt text that follows docs/alt-text-guide.md (``""`` exactly when
the expected role is decorative). ``text`` is the words in the image an alt text should
reproduce, for OCR agreement (else the reference's quoted text is used). Optional:
``link_target``, ``max_length``, ``keywords``, ``long_description`` (as in the API) and
``tags`` (free labels such as ``chart`` or ``people``). ``images`` (licences) is optional for
a private set and required of the one the project ships.

Loading checks the structure and that every image exists; :func:`image_problems` decodes them.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from PIL import Image

from alttext.describe.languages import normalise_tag
from alttext.describe.types import (
    DEFAULT_MAX_LENGTH,
    MAX_CONTEXT_CHARS,
    MAX_KEYWORDS,
    MAX_MAX_LENGTH,
    MIN_MAX_LENGTH,
    ROLES,
    DescribeOptions,
    ResolvedRole,
    Role,
)

CASES_FILE = "cases.json"
# The set the project ships: inside the package, so ``alttext eval`` works wherever it is
# installed (a wheel, the container image), and versioned with the prompt and rules it scores.
DEFAULT_SET = Path(__file__).resolve().parent / "data"
RESOLVED: tuple[ResolvedRole, ...] = ("informative", "decorative", "functional", "text", "complex")
# Licences an image of the shipped set may have: free to redistribute, no share-alike or
# non-commercial strings attached.
REDISTRIBUTABLE = frozenset({"CC0-1.0", "Public domain", "CC-BY-4.0", "CC-BY-3.0", "CC-BY-2.0"})
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
_CASE_KEYS = frozenset(
    {
        "id",
        "image",
        "language",
        "role",
        "expected_role",
        "context",
        "link_target",
        "max_length",
        "keywords",
        "long_description",
        "reference",
        "text",
        "tags",
        "notes",
    }
)
_MAX_PROBLEMS = 20


class EvalSetError(ValueError):
    """The set cannot be used; ``problems`` lists what is wrong, one line each."""

    def __init__(self, source: Path, problems: list[str]) -> None:
        shown = problems[:_MAX_PROBLEMS]
        more = len(problems) - len(shown)
        lines = "\n".join(f"  - {p}" for p in shown) + (f"\n  - … and {more} more" if more else "")
        super().__init__(f"{source}: invalid evaluation set:\n{lines}")
        self.problems = problems


@dataclass(frozen=True)
class ImageSource:
    """Where an image comes from and under which licence it may be shared."""

    licence: str
    source: str
    author: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class EvalCase:
    id: str
    image: str  # relative to the set's folder
    language: str
    role: Role
    expected_role: ResolvedRole
    reference: str
    context: str | None = None
    link_target: str | None = None
    max_length: int = DEFAULT_MAX_LENGTH
    keywords: tuple[str, ...] = ()
    long_description: bool = False
    text: str | None = None
    tags: tuple[str, ...] = ()

    def options(self, model: str | None) -> DescribeOptions:
        """What the engine is asked for this case, with ``model`` (None: the configured chain)."""
        return DescribeOptions(
            role=self.role,
            context=self.context,
            link_target=self.link_target,
            languages=(self.language,),
            max_length=self.max_length,
            keywords=self.keywords,
            long_description=self.long_description,
            model=model,
        )


@dataclass(frozen=True)
class EvalSet:
    name: str
    root: Path
    cases: tuple[EvalCase, ...]
    images: Mapping[str, ImageSource] = field(default_factory=dict)

    def path_of(self, case: EvalCase) -> Path:
        return self.root / case.image

    @property
    def languages(self) -> dict[str, int]:
        return _count(c.language for c in self.cases)

    @property
    def roles(self) -> dict[str, int]:
        """Cases per expected role."""
        return _count(c.expected_role for c in self.cases)

    @property
    def tags(self) -> dict[str, int]:
        return _count(t for c in self.cases for t in c.tags)


def _count(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return dict(sorted(out.items()))


def resolve_set_path(path: Path | None) -> Path:
    """The ``cases.json`` of ``path`` (a folder or the file itself); the shipped set if None."""
    path = DEFAULT_SET if path is None else path
    return path / CASES_FILE if path.is_dir() else path


def load_set(path: Path | None = None) -> EvalSet:
    """Read and validate a set; raise :class:`EvalSetError` listing every problem found."""
    file = resolve_set_path(path)
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvalSetError(file, ["no such file"]) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise EvalSetError(file, [f"not readable as JSON: {exc}"]) from None
    if not isinstance(raw, dict):
        raise EvalSetError(file, ["the top level must be an object with a 'cases' list"])
    problems: list[str] = []
    root = file.parent.resolve()
    images = _images(raw.get("images", {}), problems)
    cases_raw = raw.get("cases")
    if not isinstance(cases_raw, list) or not cases_raw:
        problems.append("'cases' must be a non-empty list")
        cases_raw = []
    cases: list[EvalCase] = []
    seen: set[str] = set()
    for index, item in enumerate(cases_raw):
        label = f"case {index}"
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            label = f"case {item['id']!r}"
        case = _case(cast(Any, item), label, root, problems)
        if case is None:
            continue
        if case.id in seen:
            problems.append(f"{label}: the id is used twice")
        seen.add(case.id)
        cases.append(case)
    if problems:
        raise EvalSetError(file, problems)
    name = raw.get("name")
    return EvalSet(
        name=name if isinstance(name, str) and name else root.name,
        root=root,
        cases=tuple(cases),
        images=images,
    )


def _images(raw: Any, problems: list[str]) -> dict[str, ImageSource]:
    if not isinstance(raw, dict):
        problems.append("'images' must be an object: image path -> {licence, source}")
        return {}
    out: dict[str, ImageSource] = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            problems.append(f"image {name!r}: the entry must be an object")
            continue
        licence, source = entry.get("licence"), entry.get("source")
        if not isinstance(licence, str) or not licence.strip():
            problems.append(f"image {name!r}: 'licence' is required")
            continue
        if not isinstance(source, str) or not source.strip():
            problems.append(f"image {name!r}: 'source' is required")
            continue
        author, url = entry.get("author"), entry.get("url")
        out[str(name)] = ImageSource(
            licence=licence.strip(),
            source=source.strip(),
            author=author if isinstance(author, str) else None,
            url=url if isinstance(url, str) else None,
        )
    return out


def _optional_str(item: dict[str, Any], key: str, label: str, problems: list[str]) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(f"{label}: '{key}' must be a string")
        return None
    return value


def _case(item: Any, label: str, root: Path, problems: list[str]) -> EvalCase | None:
    if not isinstance(item, dict):
        problems.append(f"{label}: must be an object")
        return None
    start = len(problems)
    unknown = sorted(set(item) - _CASE_KEYS)
    if unknown:
        problems.append(f"{label}: unknown field(s) {', '.join(unknown)}")
    case_id = item.get("id")
    if not isinstance(case_id, str) or not _ID.match(case_id):
        problems.append(f"{label}: 'id' must be lower-case letters, digits, '.', '_' or '-'")
    image = item.get("image")
    if not isinstance(image, str) or not image:
        problems.append(f"{label}: 'image' (a path relative to the set) is required")
    else:
        path = (root / image).resolve()
        if not path.is_relative_to(root):
            problems.append(f"{label}: the image {image!r} lies outside the set's folder")
        elif not path.is_file():
            problems.append(f"{label}: the image {image!r} does not exist")
    language = item.get("language")
    tag = normalise_tag(language) if isinstance(language, str) else None
    if tag is None:
        problems.append(f"{label}: 'language' must be one supported BCP 47 tag")
    role = item.get("role", "auto")
    if role not in ROLES:
        problems.append(f"{label}: 'role' must be one of {', '.join(ROLES)}")
    expected = item.get("expected_role", role if role != "auto" else None)
    if expected not in RESOLVED:
        problems.append(f"{label}: 'expected_role' must be one of {', '.join(RESOLVED)}")
    elif role not in ("auto", expected):
        problems.append(f"{label}: 'expected_role' must equal 'role' unless role is auto")
    reference = item.get("reference")
    if not isinstance(reference, str):
        problems.append(f"{label}: 'reference' (a human-written alt text) is required")
    elif (reference == "") != (expected == "decorative"):
        problems.append(f"{label}: 'reference' is empty exactly when the role is decorative")
    context = _optional_str(item, "context", label, problems)
    if context is not None and len(context) > MAX_CONTEXT_CHARS:
        problems.append(f"{label}: 'context' is longer than {MAX_CONTEXT_CHARS} characters")
    link_target = _optional_str(item, "link_target", label, problems)
    text = _optional_str(item, "text", label, problems)
    max_length = item.get("max_length", DEFAULT_MAX_LENGTH)
    if not isinstance(max_length, int) or not MIN_MAX_LENGTH <= max_length <= MAX_MAX_LENGTH:
        problems.append(
            f"{label}: 'max_length' must be an integer from {MIN_MAX_LENGTH} to {MAX_MAX_LENGTH}"
        )
    elif isinstance(reference, str) and len(reference) > max_length:
        problems.append(f"{label}: the reference is longer than max_length ({max_length})")
    keywords = item.get("keywords", [])
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        problems.append(f"{label}: 'keywords' must be a list of strings")
        keywords = []
    elif len(keywords) > MAX_KEYWORDS:
        problems.append(f"{label}: at most {MAX_KEYWORDS} keywords")
    long_description = item.get("long_description", False)
    if not isinstance(long_description, bool):
        problems.append(f"{label}: 'long_description' must be true or false")
    tags = item.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        problems.append(f"{label}: 'tags' must be a list of strings")
        tags = []
    if len(problems) > start:
        return None
    return EvalCase(
        id=cast(str, case_id),
        image=cast(str, image),
        language=cast(str, tag),
        role=cast(Role, role),
        expected_role=cast(ResolvedRole, expected),
        reference=cast(str, reference),
        context=context,
        link_target=link_target,
        max_length=cast(int, max_length),
        keywords=tuple(keywords),
        long_description=cast(bool, long_description),
        text=text,
        tags=tuple(tags),
    )


def image_problems(evalset: EvalSet, *, max_side: int | None = None) -> list[str]:
    """Images that do not decode (or are larger than ``max_side``), one line each."""
    problems: list[str] = []
    for image in sorted({c.image for c in evalset.cases}):
        try:
            with Image.open(io.BytesIO((evalset.root / image).read_bytes())) as img:
                img.load()
                size = img.size
        except Exception as exc:  # Pillow raises many types for a broken file
            problems.append(f"{image}: does not decode ({type(exc).__name__})")
            continue
        if max_side is not None and max(size) > max_side:
            problems.append(f"{image}: {size[0]}x{size[1]} is larger than {max_side} px")
    return problems


def licence_problems(evalset: EvalSet) -> list[str]:
    """Images without a licence entry, or whose licence is not one we may redistribute."""
    problems: list[str] = []
    for image in sorted({c.image for c in evalset.cases}):
        entry = evalset.images.get(image)
        if entry is None:
            problems.append(f"{image}: no licence entry")
        elif entry.licence not in REDISTRIBUTABLE:
            problems.append(f"{image}: licence {entry.licence!r} is not redistributable")
    unused = sorted(set(evalset.images) - {c.image for c in evalset.cases})
    problems += [f"{image}: a licence entry for an image no case uses" for image in unused]
    return problems
