"""Offline image classifier: what is in a photo, as one plain noun, or nothing.

EfficientNet-Lite0 trained on ImageNet-1k, exported once to ONNX by ``tools/export_classifier.py``
and shipped in ``describe/models`` (see ``models/NOTICE.md`` for provenance), runs with the
onnxruntime the OCR already needs. No download, ever; a missing file fails loudly at start-up.

What it may say, and why so little:

* ImageNet's 1000 classes are fine-grained ("tiger cat", "tabby", "Egyptian cat"). The reviewed
  table ``models/imagenet_nouns.tsv`` maps each class to a plain noun phrase ("a cat") and, for
  some, a broader group ("a bird"); probabilities are **summed** per phrase. A noun is spoken
  when its sum reaches ``THRESHOLD``; otherwise its group when the group's sum does; otherwise
  nothing. The threshold was chosen on a held-out set (docs/quality.md, "The offline engine").
* Only phrases in that table are ever spoken (the allowlist). Classes that are risky to state
  (primates, weapons, medical, screens, textures...) have no phrase.
* ImageNet has no "person" class: a person scores as their clothes or gear (an astronaut as
  "football helmet"). Classes that imply a person are marked ``person`` in the table; when
  their summed probability reaches ``PERSON_CUE`` nothing is said at all, and the engine says
  why in ``review_reasons``. The classifier never describes or identifies people.

Preprocessing: the whole image resized to 224 x 224 (bicubic; no centre crop, so a subject off
centre is not cut away: on the held-out set this beat the usual short-side-256 centre crop), then
the TensorFlow Lite builder's normalisation ``(x - 127) / 128``, which the converted weights were
trained with. (The PyTorch port's README shows the usual ImageNet mean/std; the TF constants give
the same classes with higher confidence, see the NOTICE.) Transparency is composited onto white.

Threads: one small intra-op pool per session, like the OCR reader (``default_threads``);
``InferenceSession.run`` is thread-safe, so one classifier serves every request of a process.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from alttext.describe.ocr import default_threads

MODELS_DIR = Path(__file__).resolve().parent / "models"
MODEL_FILE = "efficientnet_lite0.onnx"
LABELS_FILE = "imagenet_labels.txt"
NOUNS_FILE = "imagenet_nouns.tsv"

SIDE = 224
MEAN = 127.0
STD = 128.0
NUM_CLASSES = 1000

# Chosen on the tuning half of the held-out set (docs/quality.md, "The offline engine"): the
# lowest summed probability, in steps of 0.05, at which every noun spoken on that half was right.
THRESHOLD = 0.75
# Summed probability of person-implying classes from which nothing is said and the engine adds
# a review reason. On the held-out set it never silenced a noun that would have been spoken.
PERSON_CUE = 0.15


@dataclass(frozen=True)
class Guess:
    """What the classifier lets the engine say about one image."""

    phrase: str | None  # "a cat", "broccoli", "a bird"; None: nothing sure enough to say
    score: float  # summed probability of the phrase's classes (0.0 when phrase is None)
    person_cue: float  # summed probability of classes that imply a person
    top: tuple[tuple[str, float], ...] = ()  # best ImageNet classes, for logs and tests only

    @property
    def maybe_person(self) -> bool:
        return self.person_cue >= PERSON_CUE

    @property
    def noun(self) -> str | None:
        """The phrase without its article: "a cup of coffee" -> "cup of coffee"."""
        if self.phrase is None:
            return None
        head, _, rest = self.phrase.partition(" ")
        return rest if head in ("a", "an") and rest else self.phrase


@dataclass(frozen=True)
class NounTable:
    """The reviewed mapping, as index arrays: which classes each phrase and group sums."""

    names: tuple[str, ...]  # ImageNet name per class (first lemma)
    phrases: dict[str, np.ndarray[Any, np.dtype[np.intp]]]
    groups: dict[str, np.ndarray[Any, np.dtype[np.intp]]]
    person: np.ndarray[Any, np.dtype[np.intp]]

    @classmethod
    def load(cls, path: Path, labels_path: Path) -> NounTable:
        synsets = [line.split("\t", 1)[0] for line in labels_path.read_text().splitlines()]
        rows = [
            row
            for row in csv.reader(
                io.StringIO(path.read_text(encoding="utf-8")), delimiter="\t", quotechar=None
            )
            if row and not row[0].startswith("#")
        ]
        header, body = rows[0], rows[1:]
        if header[:6] != ["index", "synset", "imagenet_name", "noun", "group", "cue"]:
            raise RuntimeError(f"{path.name}: unexpected header {header}")
        if len(body) != NUM_CLASSES or [r[1] for r in body] != synsets:
            raise RuntimeError(f"{path.name} does not match {labels_path.name} class by class")
        phrases: dict[str, list[int]] = {}
        groups: dict[str, list[int]] = {}
        person: list[int] = []
        for index, row in enumerate(body):
            noun, group, cue = row[3], row[4], row[5]
            if noun:
                phrases.setdefault(noun, []).append(index)
            if group:
                groups.setdefault(group, []).append(index)
            if cue == "person":
                if noun or group:
                    raise RuntimeError(
                        f"{path.name}: class {index} implies a person but has a noun"
                    )
                person.append(index)
        return cls(
            names=tuple(row[2] for row in body),
            phrases={k: np.array(v, dtype=np.intp) for k, v in phrases.items()},
            groups={k: np.array(v, dtype=np.intp) for k, v in groups.items()},
            person=np.array(person, dtype=np.intp),
        )

    def guess(
        self,
        probs: np.ndarray[Any, np.dtype[np.float32]],
        *,
        threshold: float = THRESHOLD,
        person_cue: float = PERSON_CUE,
        top_k: int = 3,
    ) -> Guess:
        top = tuple((self.names[i], round(float(probs[i]), 4)) for i in np.argsort(-probs)[:top_k])
        cue = float(probs[self.person].sum())
        if cue >= person_cue:
            return Guess(phrase=None, score=0.0, person_cue=cue, top=top)
        for table in (self.phrases, self.groups):
            best, score = _best(table, probs)
            if best is not None and score >= threshold:
                return Guess(phrase=best, score=score, person_cue=cue, top=top)
        return Guess(phrase=None, score=0.0, person_cue=cue, top=top)


def _best(
    table: dict[str, np.ndarray[Any, np.dtype[np.intp]]], probs: np.ndarray[Any, Any]
) -> tuple[str | None, float]:
    best: str | None = None
    score = 0.0
    for phrase, members in table.items():
        total = float(probs[members].sum())
        if total > score:
            best, score = phrase, total
    return best, score


def preprocess(image: Image.Image) -> np.ndarray[Any, np.dtype[np.float32]]:
    """A 1x3x224x224 float32 batch: the whole image resized to 224 x 224, (x - 127) / 128."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(white, rgba).convert("RGB")
    else:
        rgb = image.convert("RGB")
    rgb = rgb.resize((SIDE, SIDE), Image.Resampling.BICUBIC, reducing_gap=3.0)
    x = (np.asarray(rgb, dtype=np.float32) - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def softmax(
    logits: np.ndarray[Any, np.dtype[np.float32]],
) -> np.ndarray[Any, np.dtype[np.float32]]:
    shifted: np.ndarray[Any, np.dtype[np.float32]] = np.exp(logits - logits.max())
    total = np.float32(shifted.sum())
    result: np.ndarray[Any, np.dtype[np.float32]] = shifted / total
    return result


class ImageClassifier:
    """Loads the ONNX model and the noun table once per process; ``classify`` is thread-safe."""

    def __init__(
        self,
        *,
        models_dir: Path = MODELS_DIR,
        threads: int | None = None,
        threshold: float = THRESHOLD,
        person_cue: float = PERSON_CUE,
        warm_up: bool = True,
    ) -> None:
        import onnxruntime as ort

        model = models_dir / MODEL_FILE
        labels = models_dir / LABELS_FILE
        nouns = models_dir / NOUNS_FILE
        for path in (model, labels, nouns):
            if not path.is_file():
                raise RuntimeError(
                    f"classifier file {path.name} is missing from {models_dir}; reinstall alttext "
                    "(models are never downloaded at run time)"
                )
        self.threshold = threshold
        self.person_cue = person_cue
        self.table = NounTable.load(nouns, labels)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        if warm_up:
            self.probabilities(Image.new("RGB", (SIDE, SIDE), (128, 128, 128)))

    def probabilities(self, image: Image.Image) -> np.ndarray[Any, np.dtype[np.float32]]:
        """Softmax over the 1000 ImageNet classes."""
        logits = self._session.run(None, {self._input: preprocess(image)})[0][0]
        return softmax(np.asarray(logits, dtype=np.float32))

    def classify(self, image: Image.Image) -> Guess:
        return self.table.guess(
            self.probabilities(image), threshold=self.threshold, person_cue=self.person_cue
        )
