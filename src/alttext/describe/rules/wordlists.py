"""Grammatical words of the languages the rules know well: evidence of a language, and the words
a cut text must never end on.

Two uses, one list per language so they cannot drift apart:

* :mod:`.language` counts a language's *distinctive* function words (in its list and in no
  other): "Croissant and café au lait on a bistro table." is English by its grammar ("and",
  "on") even though the identifier reads the French loanwords;
* :mod:`.repair` never ends a cut on a function word or one of the few extra words in
  :data:`DANGLING` ("Region-based segmentation Let." is not a sentence).

Languages without a list get neither help; adding one is cheap (articles, prepositions,
conjunctions, pronouns and auxiliaries, lower case).
"""

from __future__ import annotations

from alttext.describe.languages import primary_subtag
from alttext.describe.rules.text import word_set

FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "en": word_set(
        "a an the and or but nor of to in on at by for from with without into onto over under "
        "near behind beside between through across along around toward towards against among "
        "within upon via than that which who whom whose while where whereas because although "
        "though if unless until is are was were be been being has have had its their his her "
        "our your my this these those"
    ),
    "de": word_set(
        "der die das den dem des ein eine einer einem einen eines und oder aber sowie mit ohne "
        "von vom zu zum zur im ins am an auf aus bei beim für gegen hinter neben nach über unter "
        "vor zwischen durch um als wie dass ist sind war waren wird werden hat haben sein seine "
        "seiner seinem seinen ihr ihre ihrer ihrem ihren sich"
    ),
    "fr": word_set(
        "le la les l un une des du de d au aux et ou mais avec sans sur sous dans par pour vers "
        "chez entre à devant derrière près que qui dont où est sont ont son sa ses leur leurs "
        "ce cet cette ces"
    ),
    "es": word_set(
        "el la los las lo un una unos unas y e o u pero con sin de del a al en sobre bajo entre "
        "por para hacia desde hasta que quien cuyo donde es son está están su sus este esta "
        "estos estas"
    ),
    "it": word_set(
        "il lo la i gli le l un uno una e ed o ma con senza di del dello della dei degli delle "
        "a al allo alla ai agli alle in nel nello nella nei negli nelle su sul sullo sulla sui "
        "per tra fra da dal dalla dai che è sono suo sua suoi"
    ),
    "pt": word_set(
        "o a os as um uma uns umas e ou mas com sem de do da dos das em no na nos nas num numa "
        "por pelo pela pelos pelas para sobre entre que é são seu sua seus suas"
    ),
    "nl": word_set(
        "de het een en of maar met zonder van voor op in aan bij naar onder over tussen door "
        "die dat dit deze is zijn haar hun"
    ),
}

# Words that also never end a cut, beyond the function words: they announce what follows.
_MORE_DANGLING: dict[str, frozenset[str]] = {
    "en": word_set(
        "let lets can could will would shall should may might must do does did such very both "
        "either neither each every some any not no plus versus vs per as so we they he she i"
    ),
    "de": word_set("kann können soll sollen muss müssen sehr jede jeder jedes kein keine nicht"),
    "fr": word_set("peut doit très chaque aucun aucune ne pas il elle ils elles on se"),
    "es": word_set("puede debe muy cada ningún ninguna no se le les"),
    "it": word_set("può deve molto ogni nessun nessuna non si"),
    "pt": word_set("pode deve muito cada nenhum nenhuma não se"),
    "nl": word_set("kan moet zeer elk elke geen niet zich"),
}

DANGLING: dict[str, frozenset[str]] = {
    lang: words | _MORE_DANGLING.get(lang, frozenset()) for lang, words in FUNCTION_WORDS.items()
}

# In one list and no other: evidence for that language alone.
DISTINCTIVE: dict[str, frozenset[str]] = {
    lang: words.difference(*(other for o, other in FUNCTION_WORDS.items() if o != lang))
    for lang, words in FUNCTION_WORDS.items()
}


def dangling_words(language: str) -> frozenset[str]:
    """Words a cut text in ``language`` (a BCP 47 tag) must not end on; empty when unknown."""
    return DANGLING.get(primary_subtag(language), frozenset())


def distinctive_words(language: str) -> frozenset[str]:
    """Function words only ``language`` (a BCP 47 tag) of the listed ones uses; may be empty."""
    return DISTINCTIVE.get(primary_subtag(language), frozenset())
