"""A model bundle: a folder with the Keras 3 `model.keras` and `bundle.json`.

`bundle.json` holds the labels, the frontend settings, the architecture and the
training metadata, and the SHA-256 of model.keras so that a mismatched pair is
caught at load time. A bundle is written into a temporary sibling folder and then
swapped into place by rename, so a crash never leaves a half-written bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from kws.frontend import MfccConfig

MODEL_FILE = "model.keras"
META_FILE = "bundle.json"
FORMAT_VERSION = 1
ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_MODELS = {"gru": ASSETS / "gru", "lstm": ASSETS / "lstm"}


class BundleError(ValueError):
    """A bundle that cannot be loaded; the message names it and the problem."""


@dataclass
class Bundle:
    model: object  # keras.Model
    labels: list[str]
    frontend: MfccConfig
    arch: str
    units: int
    layers: int
    path: Path | None = None
    metadata: dict = field(default_factory=dict)
    detector: dict | None = None  # tuned DetectorConfig settings, if any

    @property
    def n_params(self) -> int:
        return int(self.model.count_params())


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_bundle(bundle: Bundle, out: str | os.PathLike) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        bundle.model.save(staging / MODEL_FILE)
        meta = {
            "format_version": FORMAT_VERSION,
            "arch": bundle.arch,
            "units": bundle.units,
            "layers": bundle.layers,
            "labels": list(bundle.labels),
            "frontend": bundle.frontend.to_dict(),
            "model_sha256": sha256_file(staging / MODEL_FILE),
            "n_params": bundle.n_params,
            "training": bundle.metadata,
            "detector": bundle.detector,
        }
        (staging / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        _swap_into_place(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _swap_into_place(staging: Path, out: Path) -> None:
    if not out.exists():
        os.rename(staging, out)
        return
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    os.rename(out, old)
    os.rename(staging, out)
    shutil.rmtree(old, ignore_errors=True)


def update_detector(path: str | os.PathLike, settings: dict) -> None:
    """Replace the tuned detector settings in an existing bundle's bundle.json, atomically."""
    path = Path(path)
    meta = read_metadata(path)
    meta["detector"] = settings
    tmp = path / f".{META_FILE}.tmp"
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp, path / META_FILE)


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """`gru` / `lstm` name the shipped models; anything else is a bundle folder."""
    if str(name_or_path) in DEFAULT_MODELS:
        return DEFAULT_MODELS[str(name_or_path)]
    return Path(name_or_path)


def read_metadata(path: Path) -> dict:
    meta_path = path / META_FILE
    if not path.is_dir():
        raise BundleError(f"{path}: no such model bundle (expected a folder with {MODEL_FILE} and {META_FILE})")
    if not meta_path.exists():
        raise BundleError(f"{path}: not a model bundle: {META_FILE} is missing")
    if not (path / MODEL_FILE).exists():
        raise BundleError(f"{path}: not a model bundle: {MODEL_FILE} is missing")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as error:
        raise BundleError(f"{meta_path}: not valid JSON ({error.msg}, line {error.lineno})") from None
    required = ("arch", "units", "layers", "labels", "frontend", "model_sha256")
    missing = [key for key in required if key not in meta]
    if missing:
        raise BundleError(f"{meta_path}: missing field(s) {', '.join(missing)}")
    if meta["model_sha256"] != sha256_file(path / MODEL_FILE):
        raise BundleError(f"{path}: {MODEL_FILE} does not match {META_FILE} (checksum differs)")
    return meta


def load_bundle(name_or_path: str | os.PathLike = "gru") -> Bundle:
    import keras

    path = resolve_model(name_or_path)
    meta = read_metadata(path)
    try:
        frontend = MfccConfig.from_dict(meta["frontend"])
    except TypeError as error:
        raise BundleError(f"{path / META_FILE}: bad frontend settings ({error})") from None
    try:
        model = keras.saving.load_model(path / MODEL_FILE, compile=False)
    except Exception as error:  # Keras raises many types for a corrupt archive; report it as one
        raise BundleError(f"{path / MODEL_FILE}: cannot load the Keras model ({type(error).__name__})") from None
    if model.output_shape[-1] != len(meta["labels"]):
        raise BundleError(
            f"{path}: the model has {model.output_shape[-1]} outputs but {META_FILE} lists {len(meta['labels'])} labels"
        )
    if model.input_shape[-1] != frontend.n_mfcc:
        raise BundleError(f"{path}: the model takes {model.input_shape[-1]} features but the frontend makes {frontend.n_mfcc}")
    return Bundle(
        model=model,
        labels=list(meta["labels"]),
        frontend=frontend,
        arch=meta["arch"],
        units=int(meta["units"]),
        layers=int(meta["layers"]),
        path=path,
        metadata=meta.get("training", {}),
        detector=meta.get("detector"),
    )
