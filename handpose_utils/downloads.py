"""Getting files from the internet, once: dataset archives, model bundles and ImageNet weights.
A download is checked and resumable (:func:`download_file`); an HTML page (a quota or login page)
where an archive was expected is rejected. Offline (like this course's CI), weight loading says
why it failed and returns ``None``: the caller keeps its random initialisation and says so."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import urllib.error
import urllib.request
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

from .safefiles import file_lock

CHUNK = 1 << 20  # bytes per read and per hashing step: 1 MiB

# Destinations that must never hold an HTML page: a server that answers with an error or login
# page and status 200 would otherwise leave a "download" that only fails when opened.
BINARY_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".task", ".pth", ".pt",
                   ".onnx", ".npz", ".npy", ".pickle", ".bin")


class DownloadError(OSError):
    """A download that failed, arrived incomplete or is not the expected file (names URL, file,
    byte counts and what to do)."""


class BrokenArchiveError(OSError):
    """An archive that cannot be read. The message names it and says to delete it."""


def download_file(url: str, dest: str | Path, timeout: float = 60.0, progress: bool = True,
                  size: int | None = None, sha256: str | None = None) -> Path:
    """Download ``url`` to ``dest`` with a progress bar and return ``dest``.

    The bytes received must match the server's ``Content-Length``, and ``size`` (bytes) and
    ``sha256`` (hex digest) when given; otherwise :class:`DownloadError` says what arrived and
    nothing gets the name ``dest``. A cut download leaves ``<dest>.part``: calling again resumes
    it with an HTTP Range request. Two processes downloading one ``dest`` take turns. An existing
    ``dest`` is not fetched again; with ``size`` or ``sha256`` it must pass them (else
    :class:`DownloadError`; the file is left for you to delete), without, any non-empty file is
    trusted, so a damaged one shows only when it is opened (see :func:`extract_zip`).
    """
    dest = Path(dest)
    sha256 = sha256.lower() if sha256 is not None else None
    if dest.is_file() and dest.stat().st_size > 0:
        return _check_existing(url, dest, size, sha256)
    with file_lock(dest):  # one writer per .part file
        if dest.is_file() and dest.stat().st_size > 0:  # another process just finished it
            return _check_existing(url, dest, size, sha256)
        part = dest.with_name(dest.name + ".part")
        total = _fetch(url, dest, part, timeout, progress, size)
        _check_download(url, part, size if size is not None else total, sha256)
        os.replace(part, dest)
        if sha256 is not None:
            _verified(dest, sha256, record=True)
    return dest


def file_sha256(path: str | Path) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB chunks (a multi-GB archive never sits in
    memory). About 1 GB/s from cached files; an 18 GB archive takes 20 s to a few minutes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def extract_zip(path: str | Path, dest: str | Path, members=None) -> Path:
    """Extract the zip archive ``path`` (all of it, or the names in ``members``) into ``dest``.

    A file that is not a readable zip (cut short, an HTML page saved under a .zip name, a
    damaged member) raises :class:`BrokenArchiveError` naming it and saying to delete it and
    download it again, instead of a bare ``BadZipFile``."""
    path, dest = Path(path), Path(dest)
    try:
        with zipfile.ZipFile(path) as zf:
            zf.extractall(dest, members)
    except (zipfile.BadZipFile, EOFError, zlib.error, KeyError) as err:
        # BadZipFile: no readable table of contents (a cut file) or a bad CRC; EOFError and
        # zlib.error: a member's compressed data ends early or is garbled; KeyError: a member
        # we need is not in the archive.
        size = path.stat().st_size if path.is_file() else 0
        raise BrokenArchiveError(
            f"{path} ({size:,} bytes) is not a complete zip archive ({type(err).__name__}: "
            f"{err}): the download or copy is cut short or damaged. Delete {path} and download "
            "it again (files already extracted from it may be incomplete too).") from err
    return dest


# The steps of download_file -----------------------------------------------------------------------

def _check_existing(url: str, dest: Path, size: int | None, sha256: str | None) -> Path:
    """``dest``, unless the existing file fails the checks the caller knows."""
    have = dest.stat().st_size
    if size is not None and have != size:
        part = dest.with_name(dest.name + ".part")
        resume = (f", or rename it to {part.name} to resume the download from its {have:,} bytes"
                  if have < size else "")
        raise DownloadError(
            f"{dest} exists but holds {have:,} bytes, not the {size:,} bytes of {url}: an "
            "incomplete or different file (an earlier download may have been cut short). "
            f"Delete it and run again to download it anew{resume}.")
    if sha256 is not None and not _verified(dest, sha256):
        digest = file_sha256(dest)
        if digest != sha256:
            raise DownloadError(
                f"{dest} exists but its SHA-256 is {digest}, not {sha256} (the file of {url}): "
                "it is damaged or a different file. Delete it and run again to download it anew.")
        _verified(dest, sha256, record=True)
    return dest


def _fetch(url: str, dest: Path, part: Path, timeout: float, progress: bool,
           size: int | None) -> int | None:
    """Bring ``part`` to the length the server announces (returned, None if unknown), resuming
    what an earlier call left. Raises :class:`DownloadError` when the transfer fails."""
    offset = part.stat().st_size if part.is_file() else 0
    if size is not None and offset > size:
        part.unlink()  # longer than the whole file: not a piece of it
        offset = 0
    for _ in range(2):  # the second try, from byte 0, when a range reply cannot be appended
        request = urllib.request.Request(url)
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as err:
            if err.code == 416 and offset:
                # Range Not Satisfiable: the part file reaches (or passes) the end of the file.
                _, total = _content_range(err.headers.get("Content-Range"))
                err.close()
                if total == offset:
                    return total
                part.unlink()
                offset = 0
                continue
            raise _network_error(url, dest, part, err) from err
        except (OSError, http.client.HTTPException) as err:
            raise _network_error(url, dest, part, err) from err
        with response:
            status = getattr(response, "status", None) or 200  # file:// URLs have no status
            length = response.headers.get("Content-Length")
            length = int(length) if length and length.strip().isdigit() else None
            if status == 206:
                start, total = _content_range(response.headers.get("Content-Range"))
                if start != offset:
                    # Not the range asked for: start again from byte 0 without a Range header.
                    part.unlink(missing_ok=True)
                    offset = 0
                    continue
                if total is None and length is not None:
                    total = start + length
            else:
                # 200: the whole file, also when we asked for a range (a server that ignores
                # Range), so the part file is rewritten from its first byte.
                start, total = 0, length
            content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip()
            if _wants_binary(dest) and content_type.lower() == "text/html":
                raise _html_error(url, dest, f"Content-Type {content_type}")
            if size is not None and total is not None and total != size:
                raise DownloadError(
                    f"{url}: the server announces {total:,} bytes, but {dest.name} should be "
                    f"{size:,} bytes: the URL now serves a different file or an error page. "
                    "Nothing was downloaded; open the URL in a browser to see what it serves.")
            _stream(url, dest, part, response, start, total, progress)
            return total
    raise DownloadError(f"{url}: the server answered a plain request for {dest.name} with a "
                        f"partial range; download the file by hand and put it at {dest}.")


def _stream(url: str, dest: Path, part: Path, response, start: int, total: int | None,
            progress: bool) -> None:
    """Write the body of ``response`` into ``part`` from byte ``start``."""
    from tqdm.auto import tqdm

    received = start
    off = {} if progress else {"disable": True}  # disable=False would beat TQDM_DISABLE
    bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=dest.name, **off)
    try:
        with open(part, "ab" if start else "wb") as f:
            while chunk := response.read(CHUNK):
                if received == 0 and _wants_binary(dest) and _looks_like_html(chunk):
                    f.close()
                    part.unlink()
                    raise _html_error(url, dest, f"its first bytes are {chunk[:40]!r}")
                f.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    except (OSError, http.client.HTTPException) as err:
        if isinstance(err, DownloadError):
            raise
        of = f" of {total:,}" if total is not None else ""
        raise DownloadError(
            f"the download of {url} broke off after {received:,}{of} bytes ({err}). They "
            f"are kept in {part}: run the same call again to resume from there.") from err
    finally:
        bar.close()


def _check_download(url: str, part: Path, size: int | None, sha256: str | None) -> None:
    """Raise unless the finished ``part`` has the expected (or announced) size and the hash."""
    got = part.stat().st_size
    if size is not None and got < size:
        raise DownloadError(
            f"{url}: the connection closed after {got:,} of {size:,} bytes. The partial file is "
            f"kept as {part}: run the same call again to resume from there.")
    if size is not None and got > size:
        part.unlink()
        raise DownloadError(
            f"{url}: received {got:,} bytes, expected {size:,}: not the expected file, so it "
            "was deleted. Run the same call again; if that fails too, open the URL in a browser "
            "to see what it serves.")
    if sha256 is not None:
        digest = file_sha256(part)
        if digest != sha256:
            part.unlink()
            raise DownloadError(
                f"{url}: the SHA-256 of the {got:,} bytes received is {digest}, expected "
                f"{sha256}: a damaged or different file, so it was deleted. Run the same call "
                "again to download it anew; if that fails too, the file on the server changed.")


def _network_error(url: str, dest: Path, part: Path, err: Exception) -> DownloadError:
    kept = ""
    if part.is_file() and part.stat().st_size:
        kept = (f" The {part.stat().st_size:,} bytes received earlier are kept in {part}; the "
                "next call resumes from there.")
    return DownloadError(f"could not download {url} to {dest}: {err}. This needs internet "
                         "access (Colab has it); or download the file by hand and put it there."
                         + kept)


def _html_error(url: str, dest: Path, evidence: str) -> DownloadError:
    return DownloadError(
        f"{url} sent an HTML page ({evidence}), not the file {dest.name}: usually a quota, "
        "login or error page. Nothing was saved. Open the URL in a browser to read it, wait and "
        f"run again, or download the file by hand and put it at {dest}.")


def _wants_binary(dest: Path) -> bool:
    return dest.suffix.lower() in BINARY_SUFFIXES


def _looks_like_html(chunk: bytes) -> bool:
    head = chunk[:256].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype", b"<html"))


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of ``bytes 100-299/300``; ``None`` where absent or ``*``."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", header or "")
    if not match:
        return None, None
    start, total = match.groups()
    return (int(start) if start else None), (int(total) if total != "*" else None)


# A SHA-256 check reads the whole file: up to minutes for an 18 GB archive, too slow to repeat
# whenever a notebook calls download_file again, while comparing sizes alone misses a file of
# the right length with damaged bytes. So a file that matched its hash gets a small record
# ``<dest>.verified`` (hash, size, modification time); later calls trust it without hashing
# while size and modification time are unchanged, and hash again otherwise.

def _verified(dest: Path, sha256: str, record: bool = False) -> bool:
    """Whether ``dest`` matched ``sha256`` and is unchanged since; ``record=True`` notes it now."""
    st = dest.stat()
    path = dest.with_name(dest.name + ".verified")
    stamp = f"sha256={sha256} size={st.st_size} mtime_ns={st.st_mtime_ns}\n"
    if record:
        path.write_text(stamp)
    return path.is_file() and path.read_text() == stamp


@contextmanager
def socket_timeout(seconds: float):
    """A default socket timeout while active: torch's weight download takes no timeout, and on
    a machine without internet a connection attempt could otherwise hang."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def imagenet_state_dict(weights, what: str, timeout: float = 30.0, log=print) -> dict | None:
    """The hash-checked state dict of a torchvision ``weights`` member (cached in
    ``~/.cache/torch/hub``), or ``None`` after ``log`` says why and that ``what`` starts from
    random weights."""
    try:
        with socket_timeout(timeout):
            return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as err:  # noqa: BLE001 - any failure means the same fallback
        if log:
            log(f"ImageNet weights for {what} unavailable "
                f"({type(err).__name__}: {str(err)[:160]}).\n"
                f"Continuing with RANDOM initialisation: {what} trains from scratch and learns "
                f"much more slowly. To use them offline, put {weights.url.rsplit('/', 1)[1]} in "
                "~/.cache/torch/hub/checkpoints/.")
        return None
