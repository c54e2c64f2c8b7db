"""ImageClassifier: plain nouns from EfficientNet-Lite0, only when sure, never about people."""

from __future__ import annotations

import hashlib
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from alttext.describe import classify
from alttext.describe.classify import Guess, ImageClassifier, NounTable, preprocess

DATA = Path(__file__).parent / "data"
MODELS = classify.MODELS_DIR


@pytest.fixture(scope="module")
def classifier() -> ImageClassifier:
    return ImageClassifier()


@pytest.fixture(scope="module")
def table() -> NounTable:
    return NounTable.load(MODELS / classify.NOUNS_FILE, MODELS / classify.LABELS_FILE)


def sample(name: str) -> Image.Image:
    with Image.open(DATA / name) as img:
        img.load()
        return img.copy()


def screenshot() -> Image.Image:
    img = Image.new("RGB", (1024, 640), (250, 250, 252))
    pen = ImageDraw.Draw(img)
    pen.rectangle((0, 0, 1024, 36), fill=(225, 225, 230))
    pen.rectangle((0, 36, 200, 640), fill=(238, 239, 243))
    for i in range(12):
        pen.text(
            (230, 60 + i * 40), "Account settings and billing", font=ImageFont.load_default(size=22)
        )
    return img


def test_the_cat_photo_is_a_cat(classifier: ImageClassifier) -> None:
    guess = classifier.classify(sample("chelsea.jpg"))

    assert guess.phrase == "a cat"
    assert guess.noun == "cat"
    assert guess.score >= classify.THRESHOLD
    assert not guess.maybe_person
    # Summed: no single cat class would be sure enough on its own for every cat photo.
    assert {name for name, _ in guess.top} <= {"Egyptian cat", "tiger cat", "tabby"}


def test_the_coffee_photo_is_a_cup(classifier: ImageClassifier) -> None:
    guess = classifier.classify(sample("coffee.jpg"))

    assert guess.phrase in ("a cup of coffee", "a cup")
    assert guess.top[0][0] == "espresso"


def test_an_astronaut_gets_no_label_and_a_person_cue(classifier: ImageClassifier) -> None:
    guess = classifier.classify(sample("astronaut.jpg"))

    assert guess.phrase is None  # not "a football helmet", not "a bobsled", never a person word
    assert guess.maybe_person


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(lambda: screenshot(), id="screenshot"),
        pytest.param(lambda: Image.new("RGB", (400, 300), (30, 90, 200)), id="flat"),
        pytest.param(
            lambda: Image.fromarray(
                np.random.default_rng(3).integers(0, 256, (300, 400, 3), dtype=np.uint8)
            ),
            id="noise",
        ),
        pytest.param(lambda: sample("page.png"), id="page-scan"),
    ],
)
def test_non_photos_get_no_noun(classifier: ImageClassifier, image: object) -> None:
    assert callable(image)
    assert classifier.classify(image()).phrase is None


def test_probabilities_are_a_distribution(classifier: ImageClassifier) -> None:
    probs = classifier.probabilities(sample("chelsea.jpg"))

    assert probs.shape == (classify.NUM_CLASSES,)
    assert probs.dtype == np.float32
    assert abs(float(probs.sum()) - 1.0) < 1e-4
    assert probs.min() >= 0


def test_concurrent_classification_matches_sequential(classifier: ImageClassifier) -> None:
    images = [sample("chelsea.jpg"), sample("coffee.jpg"), sample("astronaut.jpg")] * 2
    expected = [classifier.classify(img) for img in images]

    with ThreadPoolExecutor(max_workers=2) as pool:
        got = list(pool.map(classifier.classify, images))

    assert [g.phrase for g in got] == [e.phrase for e in expected]
    assert [g.top for g in got] == [e.top for e in expected]


def test_preprocess_resizes_the_whole_image_and_normalises() -> None:
    wide = Image.new("RGB", (900, 300), (255, 255, 255))
    clear = Image.new("RGBA", (50, 80), (0, 0, 0, 0))

    x = preprocess(wide)
    y = preprocess(clear)

    assert x.shape == (1, 3, classify.SIDE, classify.SIDE)
    assert x.dtype == np.float32
    assert np.allclose(x, (255 - classify.MEAN) / classify.STD)
    assert np.allclose(y, (255 - classify.MEAN) / classify.STD)  # transparency -> white


# --- the reviewed noun table ----------------------------------------------------------------


def test_noun_table_covers_every_class_in_model_order(table: NounTable) -> None:
    labels = (MODELS / classify.LABELS_FILE).read_text().splitlines()

    assert len(table.names) == classify.NUM_CLASSES == len(labels)
    assert table.names[281] == "tabby"
    assert set(table.phrases["a cat"]) == {281, 282, 283, 284, 285}
    assert len(table.phrases["a dog"]) == 118  # every breed is "a dog"


@pytest.mark.parametrize(
    "name",
    [
        "gorilla",
        "chimpanzee",
        "orangutan",
        "groom",
        "scuba diver",
        "ballplayer",
        "football helmet",
        "military uniform",
        "assault rifle",
        "revolver",
        "syringe",
        "web site",
        "monitor",
    ],
)
def test_risky_and_person_classes_are_never_spoken(table: NounTable, name: str) -> None:
    index = table.names.index(name)
    spoken = {int(i) for members in table.phrases.values() for i in members}
    spoken |= {int(i) for members in table.groups.values() for i in members}

    assert index not in spoken


def test_person_classes_are_cues(table: NounTable) -> None:
    cues = {table.names[int(i)] for i in table.person}

    assert {"groom", "scuba diver", "ballplayer", "football helmet", "military uniform"} <= cues


def test_phrases_are_plain_lowercase_noun_phrases(table: NounTable) -> None:
    for phrase in [*table.phrases, *table.groups]:
        assert phrase == phrase.strip()
        assert phrase[0].islower()
        assert not phrase.endswith(".")
        assert "person" not in phrase
        assert "man" not in phrase.split()


def distribution(**by_name: float) -> np.ndarray:  # type: ignore[type-arg]
    names = NounTable.load(MODELS / classify.NOUNS_FILE, MODELS / classify.LABELS_FILE).names
    probs = np.zeros(classify.NUM_CLASSES, dtype=np.float32)
    rest = 1.0 - sum(by_name.values())
    probs[:] = rest / classify.NUM_CLASSES
    for name, p in by_name.items():
        probs[names.index(name.replace("_", " "))] += p
    return probs


def test_related_classes_are_summed(table: NounTable) -> None:
    probs = distribution(tabby=0.3, tiger_cat=0.3, Egyptian_cat=0.25)

    guess = table.guess(probs)

    assert guess.phrase == "a cat"
    assert guess.score == pytest.approx(0.85, abs=0.01)


def test_a_group_is_said_when_no_single_noun_is_sure(table: NounTable) -> None:
    probs = distribution(goose=0.45, black_swan=0.2, albatross=0.2)

    assert table.guess(probs).phrase == "a bird"


def test_nothing_is_said_below_the_threshold(table: NounTable) -> None:
    probs = distribution(tabby=0.4, Chihuahua=0.3)

    guess = table.guess(probs)

    assert guess == Guess(phrase=None, score=0.0, person_cue=guess.person_cue, top=guess.top)


def test_a_person_cue_silences_every_noun(table: NounTable) -> None:
    probs = distribution(tabby=0.7, tiger_cat=0.1, military_uniform=0.15)

    guess = table.guess(probs)

    assert guess.phrase is None
    assert guess.maybe_person


# --- files and provenance -------------------------------------------------------------------


def test_missing_model_fails_loudly_at_start_up(tmp_path: Path) -> None:
    for name in (classify.LABELS_FILE, classify.NOUNS_FILE):
        shutil.copy(MODELS / name, tmp_path / name)

    with pytest.raises(RuntimeError, match="never downloaded"):
        ImageClassifier(models_dir=tmp_path)


def test_a_table_that_does_not_match_the_labels_is_refused(tmp_path: Path) -> None:
    rows = (MODELS / classify.NOUNS_FILE).read_text().splitlines()
    (tmp_path / "nouns.tsv").write_text("\n".join(rows[:-1]) + "\n")

    with pytest.raises(RuntimeError, match="does not match"):
        NounTable.load(tmp_path / "nouns.tsv", MODELS / classify.LABELS_FILE)


def test_shipped_files_match_the_notice() -> None:
    notice = (MODELS / "NOTICE.md").read_text()
    for name in (classify.MODEL_FILE, classify.LABELS_FILE):
        digest = hashlib.sha256((MODELS / name).read_bytes()).hexdigest()
        assert digest in notice, name
    assert (MODELS / "LICENSE-Apache-2.0.txt").read_text().count("Apache License") >= 1
