"""The built wheel, installed into a new virtual environment outside the checkout, runs
the shipped models: the models travel inside the package, and nothing is imported from
the checkout. (CI also installs the wheel with its dependencies from the registry:
scripts/check_wheel.sh.)"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def run(args: list, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A new venv holding the wheel; its dependencies come from this environment through a
    .pth file, so the test needs no network (the checkout itself is not on the path)."""
    root = tmp_path_factory.mktemp("wheel")
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root / "dist", ROOT],
                cwd=root)
    assert built.returncode == 0, built.stderr[-2000:]
    assert "BuildBackendWarning" not in built.stderr, built.stderr  # e.g. the old license-table deprecation box
    wheel = next((root / "dist").glob("kws-*.whl"))
    venv = root / "venv"
    assert run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=root).returncode == 0
    purelib = run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root)
    site_packages = Path(purelib.stdout.strip())
    (site_packages / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    result = run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q", "--no-deps", wheel],
                 cwd=root)
    assert result.returncode == 0, result.stderr[-2000:]
    return venv


def test_wheel_carries_the_shipped_models(installed, tmp_path):
    where = run([installed / "bin" / "python", "-c", "import kws.bundle as b; print(b.__file__); print(b.ASSETS)"],
                cwd=tmp_path)
    module, assets = where.stdout.split()
    assert module.startswith(str(installed)) and assets.startswith(str(installed)), where.stdout
    for name in ("gru", "lstm"):
        assert {p.name for p in (Path(assets) / name).iterdir()} >= {"bundle.json", "model.keras"}


def test_installed_kws_runs_the_shipped_model_outside_the_checkout(installed, tmp_path):
    recording = ROOT / "examples" / "commands.wav"
    stream = run([installed / "bin" / "kws", "stream", recording, "--model", "gru", "--format", "json"], cwd=tmp_path)
    assert stream.returncode == 0 and stream.stderr == "", stream.stderr
    from_checkout = run([sys.executable, "-m", "kws.cli", "stream", recording, "--format", "json"], cwd=ROOT)
    assert json.loads(stream.stdout) == json.loads(from_checkout.stdout) != []
    classify = run([installed / "bin" / "kws", "classify", recording, "--model", "lstm"], cwd=tmp_path)
    assert classify.returncode == 0 and classify.stdout.startswith(str(recording)), classify.stderr
    train_help = run([installed / "bin" / "kws-train", "--help"], cwd=tmp_path)
    assert train_help.returncode == 0 and "--data" in train_help.stdout and train_help.stderr == ""
