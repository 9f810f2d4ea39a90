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

from kws.errors import KwsError
from kws.frontend import MfccConfig
from kws.network import Network, NetworkError, read_keras_file

MODEL_FILE = "model.keras"
META_FILE = "bundle.json"
FORMAT_VERSION = 1
SPLIT_KEYS = ("val_percent", "test_percent", "split_salt")


def _assets_folder() -> Path:
    """The shipped models: inside the package when installed from a wheel (pyproject.toml
    maps the top-level assets/ there), beside the package in a checkout."""
    package = Path(__file__).resolve().parent
    installed = package / "assets"
    return installed if installed.is_dir() else package.parent / "assets"


ASSETS = _assets_folder()
DEFAULT_MODELS = {"gru": ASSETS / "gru", "lstm": ASSETS / "lstm"}


class BundleError(KwsError):
    """A bundle that cannot be loaded; the message names it and the problem."""


@dataclass
class Bundle:
    """A model's settings and, once loaded, its network. The bundle is the one source of
    a model's sample rate, frame timing, labels and data split."""

    labels: list[str]
    frontend: MfccConfig
    arch: str
    units: int
    layers: int
    path: Path | None = None
    metadata: dict = field(default_factory=dict)
    detector: dict | None = None  # tuned DetectorConfig settings, if any
    network: Network | None = None  # None while a bundle is being written by training

    @property
    def n_params(self) -> int:
        return self.network.n_params

    @property
    def split(self) -> dict:
        """The data split the model was trained with: `val_percent`, `test_percent`, `split_salt`."""
        return {key: self.metadata[key] for key in SPLIT_KEYS if key in self.metadata}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_bundle(bundle: Bundle, model, out: str | os.PathLike) -> Path:
    """Write `model` (a Keras model: anything with `.save(path)` and `.count_params()`)
    and the bundle's settings into the folder `out`, atomically."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be shared
        model.save(staging / MODEL_FILE)
        meta = {
            "format_version": FORMAT_VERSION,
            "arch": bundle.arch,
            "units": bundle.units,
            "layers": bundle.layers,
            "labels": list(bundle.labels),
            "frontend": bundle.frontend.to_dict(),
            "model_sha256": sha256_file(staging / MODEL_FILE),
            "n_params": int(model.count_params()),
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
    """Read a bundle's settings and its network's weights (no TensorFlow needed). A path
    ending in .tflite is a model exported by `kws export`, with its JSON (kws/litert.py)."""
    if str(name_or_path).endswith(".tflite"):
        from kws.litert import load_exported

        return load_exported(name_or_path)
    path = resolve_model(name_or_path)
    meta = read_metadata(path)
    try:
        frontend = MfccConfig.from_dict(meta["frontend"])
    except TypeError as error:
        raise BundleError(f"{path / META_FILE}: bad frontend settings ({error})") from None
    try:
        network = read_keras_file(path / MODEL_FILE)
    except NetworkError as error:
        raise BundleError(f"{path / MODEL_FILE}: cannot use this model: {error}") from None
    if network.n_classes != len(meta["labels"]):
        raise BundleError(f"{path}: the model has {network.n_classes} outputs but {META_FILE} lists {len(meta['labels'])} labels")
    if network.n_features != frontend.n_mfcc:
        raise BundleError(f"{path}: the model takes {network.n_features} features but the frontend makes {frontend.n_mfcc}")
    if network.arch != meta["arch"]:
        raise BundleError(f"{path}: {MODEL_FILE} holds a {network.arch.upper()} but {META_FILE} says {meta['arch']}")
    return Bundle(
        labels=list(meta["labels"]),
        frontend=frontend,
        arch=meta["arch"],
        units=int(meta["units"]),
        layers=int(meta["layers"]),
        path=path,
        metadata=meta.get("training", {}),
        detector=meta.get("detector"),
        network=network,
    )
