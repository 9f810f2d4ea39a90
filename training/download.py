"""Download and extract the Speech Commands v0.02 archives.

    python -m training.download --out data/speech_commands

fetches the training archive (2.4 GB) into OUT/train and the canonical test set
(113 MB) into OUT/test. Interrupted downloads resume from the partial file (HTTP
Range); every archive is checked against its published SHA-256 before extraction.
"""

from __future__ import annotations

import http.client
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

from kws.bundle import sha256_file
from kws.errors import EXIT_BAD_INPUT, KwsError
from training.options import make_parser, run_main


@dataclass(frozen=True)
class Archive:
    url: str
    sha256: str
    size: int | None = None

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


# Sizes and checksums as published in tensorflow/datasets url_checksums/speech_commands.txt
ARCHIVES = {
    "train": Archive(
        "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
        "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
        2428923189,
    ),
    "test": Archive(
        "http://download.tensorflow.org/data/speech_commands_test_set_v0.02.tar.gz",
        "cc2a00c1147c2254e9be3fa0f779d8c17421dc349b86366567a8edfa9acd51df",
        112563277,
    ),
}
BLOCK = 1 << 16


class DownloadError(KwsError):
    """An archive that cannot be fetched, verified or extracted (an input that cannot be used)."""

    exit_code = EXIT_BAD_INPUT


def _open(url: str, offset: int, timeout: float):
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416:  # the partial file is already complete
            return None
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(f"{url}: cannot connect ({reason})") from None


def fetch(archive: Archive, dest: Path, show_progress: bool = True, timeout: float = 60.0) -> Path:
    """Download `archive` to `dest`, resuming from `dest.part`; verify the checksum."""
    if dest.exists() and sha256_file(dest) == archive.sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    response = _open(archive.url, offset, timeout)
    if response is not None:
        with response:
            if offset and response.status != 206:  # the server ignored Range: start again
                offset = 0
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length else archive.size
            with open(part, "ab" if offset else "wb") as out, _progress(show_progress) as progress:
                task = progress.add_task(archive.filename, total=total, completed=offset)
                try:
                    for block in iter(lambda: response.read(BLOCK), b""):
                        out.write(block)
                        progress.advance(task, len(block))
                except (OSError, http.client.HTTPException) as error:
                    raise DownloadError(
                        f"{archive.url}: connection lost after {out.tell()} bytes ({error}); run again to resume"
                    ) from None
                if length and out.tell() < total:
                    raise DownloadError(
                        f"{archive.url}: connection lost after {out.tell()} of {total} bytes; run again to resume"
                    )
    actual = sha256_file(part)
    if actual != archive.sha256:
        part.unlink()
        raise DownloadError(
            f"{dest.name}: checksum mismatch (expected {archive.sha256[:12]}..., got {actual[:12]}...); "
            "the corrupt download was deleted, run again"
        )
    part.replace(dest)
    return dest


def _progress(enabled: bool) -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


# tarfile's extraction filters arrived in Python 3.10.12, 3.11.4 and 3.12; older Pythons that
# requires-python admits check the members themselves (`checked_members`).
HAS_DATA_FILTER = hasattr(tarfile, "data_filter")


def _unsafe(member: tarfile.TarInfo) -> str | None:
    """Why `member` must not be extracted, or None: what `filter="data"` refuses, stricter
    (no absolute path and no `..` in its name or link target, so nothing lands or points
    outside the folder; nothing but files, folders and links)."""
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        return "not a file, folder or link (a device or pipe)"
    for kind, path in (("path", member.name), ("link target", member.linkname if member.issym() or member.islnk() else "")):
        if path.startswith("/") or ".." in path.split("/"):
            return f"its {kind} {path!r} leaves the folder"
    return None


def checked_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """Every member of `tar` when all are safe (else a `tarfile.TarError` naming the first
    that is not), with the setuid, setgid, sticky and group/other write bits cleared as the
    "data" filter does: the fallback for Pythons without extraction filters."""
    members = tar.getmembers()
    for member in members:
        problem = _unsafe(member)
        if problem:
            raise tarfile.TarError(f"{member.name!r}: {problem}")
        member.mode &= 0o755
    return members


def extract(archive_path: Path, target: Path) -> Path:
    """Extract into `target` via a staging folder, so a half-extracted tree is never taken as done."""
    marker = target / ".extracted"
    if marker.exists():
        return target
    staging = target.with_name(target.name + ".extracting")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with tarfile.open(archive_path) as tar:
            if HAS_DATA_FILTER:
                tar.extractall(staging, filter="data")
            else:
                tar.extractall(staging, members=checked_members(tar))
    except (tarfile.TarError, EOFError, OSError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise DownloadError(f"{archive_path}: cannot extract ({error})") from None
    (staging / ".extracted").write_text(archive_path.name + "\n")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target


def download(out: Path, which: list[str], archives: dict[str, Archive] = ARCHIVES, show_progress: bool = True,
             keep_archives: bool = False) -> dict[str, Path]:
    out = Path(out)
    done = {}
    for name in which:
        archive = archives[name]
        target = out / name
        if (target / ".extracted").exists():
            done[name] = target
            continue
        path = fetch(archive, out / archive.filename, show_progress)
        done[name] = extract(path, target)
        if not keep_archives:
            path.unlink()
    return done


def main(argv: list[str] | None = None) -> int:
    parser = make_parser("python -m training.download", __doc__)
    parser.add_argument("--out", required=True, help="folder to download into")
    parser.add_argument("--which", default="train,test", help="comma-separated: train, test")
    parser.add_argument("--url", help="download this archive instead (a mirror); needs --sha256")
    parser.add_argument("--sha256", help="expected SHA-256 of --url")
    parser.add_argument("--keep-archives", action="store_true", help="keep the .tar.gz files after extracting")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    archives = dict(ARCHIVES)
    which = [w for w in args.which.split(",") if w]
    if args.url:
        if not args.sha256:
            parser.error("--url needs --sha256")
        if len(which) != 1:
            parser.error("--url replaces exactly one archive: give --which train or --which test")
        archives[which[0]] = Archive(args.url, args.sha256)
    unknown = [w for w in which if w not in archives]
    if unknown:
        parser.error(f"unknown archive(s) {', '.join(unknown)}; choose from train, test")

    def run() -> int:
        done = download(Path(args.out), which, archives, not args.no_progress, args.keep_archives)
        for name, path in done.items():
            print(f"{name}: {path}")
        return 0

    return run_main(run, "interrupted: run the same command again to resume")


if __name__ == "__main__":
    sys.exit(main())
