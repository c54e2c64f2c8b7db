"""BCP 47 language tags the service accepts: ISO 639-1 primary subtags (plus a few ISO 639-3)."""

from __future__ import annotations

import re

_ISO_639_1 = frozenset(
    # A word list reads best as one string.
    """
    aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu
    cv cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi
    ho hr ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks
    ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl
    nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl
    sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve
    vi vo wa wo xh yi yo za zh zu
    """.split()  # noqa: SIM905
)
_ISO_639_3_COMMON = {"fil", "haw", "yue", "cmn", "ast", "ckb", "gsw", "nds", "sco", "tok"}
_TAG = re.compile(r"^([A-Za-z]{2,3})(?:-([A-Za-z]{4}))?(?:-([A-Za-z]{2}|[0-9]{3}))?$")


def normalise_tag(tag: str) -> str | None:
    """Canonical case (``pt-BR``, ``zh-Hant``) for a known language, ``None`` if not accepted."""
    match = _TAG.match(tag.strip())
    if not match:
        return None
    lang, script, region = match.groups()
    lang = lang.lower()
    if lang not in _ISO_639_1 and lang not in _ISO_639_3_COMMON:
        return None
    out = lang
    if script:
        out += "-" + script.title()
    if region:
        out += "-" + region.upper()
    return out


def primary_subtag(tag: str) -> str:
    """The language part of a tag, lower-cased (``pt-BR`` -> ``pt``), for every comparison in
    describe/: callers of the library may pass unnormalised tags (``" EN_us"``), so stray
    spaces, case and an underscore separator are tolerated here rather than at each caller."""
    return tag.strip().lower().replace("_", "-").split("-", 1)[0]
