"""The downloader against a real HTTP server on localhost serving an archive built here."""

import hashlib
import random
import io
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import run_cli
from training import download as download_module
from training.download import Archive, DownloadError, download, fetch


class RangeHandler(SimpleHTTPRequestHandler):
    """Serves files with HTTP Range support; can cut the connection after N bytes."""

    cut_after: int | None = None
    requests: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.translate_path(self.path)
        try:
            data = open(path, "rb").read()
        except FileNotFoundError:
            self.send_error(404, "Not Found")
            return
        start = 0
        header = self.headers.get("Range")
        type(self).requests.append(header)
        if header:
            start = int(header.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        limit = type(self).cut_after
        if limit is not None:
            type(self).cut_after = None
            self.wfile.write(body[:limit])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    archive = root / "speech_commands_mini.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, payload in {"yes/a_nohash_0.wav": b"RIFF" + random.randbytes(50_000), "no/b_nohash_0.wav": random.randbytes(70_000)}.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        info = tarfile.TarInfo("README.md")
        readme = b"mini\n" * 1000
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
    handler = type("Handler", (RangeHandler,), {"cut_after": None, "requests": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/{archive.name}"
    yield url, hashlib.sha256(archive.read_bytes()).hexdigest(), handler, archive
    httpd.shutdown()


def test_download_verify_and_extract(server, tmp_path):
    url, sha, _, _ = server
    out = tmp_path / "data"
    done = download(out, ["train"], {"train": Archive(url, sha)}, show_progress=False)
    assert (done["train"] / "yes" / "a_nohash_0.wav").stat().st_size == 50_004
    assert (done["train"] / "no" / "b_nohash_0.wav").exists()
    assert not list(out.glob("*.tar.gz*"))  # archive removed after extraction


def test_resume_after_interruption(server, tmp_path):
    url, sha, handler, archive = server
    handler.cut_after = 30_000
    dest = tmp_path / "a.tar.gz"
    with pytest.raises(DownloadError, match="connection lost"):
        fetch(Archive(url, sha), dest, show_progress=False, timeout=5)
    part = tmp_path / "a.tar.gz.part"
    assert part.stat().st_size == 30_000 < archive.stat().st_size
    fetch(Archive(url, sha), dest, show_progress=False)
    assert handler.requests == [None, "bytes=30000-"]
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == sha


def test_resume_from_partial_file_uses_range(server, tmp_path):
    url, sha, handler, archive = server
    dest = tmp_path / "b.tar.gz"
    (tmp_path / "b.tar.gz.part").write_bytes(archive.read_bytes()[:1234])
    fetch(Archive(url, sha), dest, show_progress=False)
    assert handler.requests == ["bytes=1234-"]
    assert dest.read_bytes() == archive.read_bytes()


def test_checksum_mismatch_is_an_error_and_removes_the_file(server, tmp_path):
    url, _, _, _ = server
    dest = tmp_path / "c.tar.gz"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch(Archive(url, "0" * 64), dest, show_progress=False)
    assert not dest.exists() and not (tmp_path / "c.tar.gz.part").exists()


def test_cli_download_with_progress_and_errors(server, tmp_path):
    url, sha, _, _ = server
    out = tmp_path / "cli"
    ok = run_cli("training.download", "--out", str(out), "--which", "train", "--url", url, "--sha256", sha)
    assert ok.returncode == 0, ok.stderr
    assert (out / "train" / "README.md").exists()
    bad = run_cli("training.download", "--out", str(tmp_path / "x"), "--which", "test",
                  "--url", url.replace(".tar.gz", "-missing.tar.gz"), "--sha256", sha)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("error: ") and "404" in bad.stderr


def test_published_archives_are_listed_with_checksums():
    from training.download import ARCHIVES

    assert ARCHIVES["train"].url.endswith("speech_commands_v0.02.tar.gz")
    assert ARCHIVES["test"].url.endswith("speech_commands_test_set_v0.02.tar.gz")
    assert all(len(a.sha256) == 64 for a in ARCHIVES.values())


def malicious_tar(path, member: tarfile.TarInfo):
    """A tar with one good file and `member`, a member that must not be extracted."""
    with tarfile.open(path, "w:gz") as tar:
        good = tarfile.TarInfo("yes/a_nohash_0.wav")
        good.size = 4
        tar.addfile(good, io.BytesIO(b"RIFF"))
        tar.addfile(member, io.BytesIO(b"evil") if member.isfile() else None)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = 4 if kind == tarfile.REGTYPE else 0
    return info


MALICIOUS = {
    "parent path": member("../evil.txt"),
    "nested parent path": member("yes/../../evil.txt"),
    "absolute path": member("/tmp/kws-evil.txt"),
    "symlink out": member("yes/link", tarfile.SYMTYPE, "../../evil.txt"),
    "absolute symlink": member("yes/passwd", tarfile.SYMTYPE, "/etc/passwd"),
    "hard link out": member("yes/hard", tarfile.LNKTYPE, "../evil.txt"),
    "device": member("yes/null", tarfile.CHRTYPE),
}


@pytest.mark.parametrize("has_filter", [False, True], ids=["fallback", "data filter"])
@pytest.mark.parametrize("name", MALICIOUS)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Python 3.12-3.13 warn about extracting without a filter
def test_malicious_archive_is_refused_with_or_without_tarfiles_filter(name, has_filter, tmp_path, monkeypatch):
    if has_filter and not download_module.HAS_DATA_FILTER:
        pytest.skip("this Python has no tarfile extraction filters")
    monkeypatch.setattr(download_module, "HAS_DATA_FILTER", has_filter)
    archive = malicious_tar(tmp_path / "bad.tar.gz", MALICIOUS[name])
    target = tmp_path / "deep" / "er" / "train"
    if has_filter and name == "absolute path":  # the data filter strips the / and keeps it inside the folder
        download_module.extract(archive, target)
        assert all(p.resolve().is_relative_to(target.resolve()) for p in target.rglob("*"))
        assert not (tmp_path / "evil.txt").exists()
        return
    with pytest.raises(DownloadError, match=f"{archive}: cannot extract"):
        download_module.extract(archive, target)
    assert not target.exists() and not target.with_name("train.extracting").exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "deep" / "evil.txt").exists()
    assert not (tmp_path / "deep" / "er" / "evil.txt").exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fallback_extracts_a_sound_archive_and_clears_unsafe_mode_bits(tmp_path, monkeypatch):
    monkeypatch.setattr(download_module, "HAS_DATA_FILTER", False)
    path = tmp_path / "ok.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        setuid = member("yes/a_nohash_0.wav")
        setuid.mode = 0o4777
        tar.addfile(setuid, io.BytesIO(b"RIFF"))
        tar.addfile(member("no/link.wav", tarfile.SYMTYPE, "../yes/a_nohash_0.wav"))  # a link inside: no
    with pytest.raises(DownloadError, match="'no/link.wav': its link target '../yes/a_nohash_0.wav' leaves the folder"):
        download_module.extract(path, tmp_path / "strict")
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(setuid, io.BytesIO(b"RIFF"))
        tar.addfile(member("yes/same.wav", tarfile.SYMTYPE, "a_nohash_0.wav"))
    done = download_module.extract(path, tmp_path / "train")
    assert (done / "yes" / "a_nohash_0.wav").stat().st_mode & 0o7777 == 0o755
    assert (done / "yes" / "same.wav").read_bytes() == b"RIFF" and (done / ".extracted").exists()
