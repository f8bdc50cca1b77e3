"""Getting files from the internet, once: dataset archives and model bundles. A download is
checked and resumable (:func:`download_file`); an HTML page (a quota or login page) where an
archive was expected is rejected. ImageNet weights: :mod:`.pretrained`."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

from .env import archives_dir, progress_bar
from .safefiles import atomic_write, file_lock

CHUNK = 1 << 20  # bytes per read and per hashing step: 1 MiB

# Destinations that must never hold an HTML page: a server that answers with an error or login
# page and status 200 would otherwise leave a "download" that only fails when opened.
BINARY_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".task", ".pth", ".pt",
                   ".onnx", ".npz", ".npy", ".pickle", ".bin")
HASHES = {"sha256": "SHA-256", "md5": "MD5"}  # hashlib's names and how messages write them


class DownloadError(OSError):
    """A download that failed, arrived incomplete or is not the expected file (names URL, file,
    byte counts and what to do)."""


class BrokenArchiveError(OSError):
    """An archive that cannot be read. The message names it and says to delete it."""


def download_file(url: str, dest: str | Path, timeout: float = 60.0, progress: bool = True,
                  size: int | None = None, sha256: str | None = None, md5: str | None = None,
                  log=print) -> Path:
    """Download ``url`` to ``dest`` with a progress bar and return ``dest``.

    The bytes received must match the server's ``Content-Length``, and ``size`` (bytes),
    ``sha256`` and ``md5`` (hex digests) when given; with no length known, a ``.zip`` or ``.task``
    must be a readable zip. Otherwise :class:`DownloadError` says what arrived and what was kept,
    and nothing gets the name ``dest``. A cut download leaves ``<dest>.part`` and its version
    (ETag or Last-Modified) in ``<dest>.part.validator``: calling again resumes it with Range and
    If-Range, so a file changed on the server restarts from byte 0 (``log`` says so) instead of
    being spliced. Two processes downloading one ``dest`` take turns. An existing ``dest`` is not
    fetched again; with ``size`` or a digest it must pass them (else :class:`DownloadError`; the
    file is left for you to delete), without, any non-empty file is trusted, so a damaged one
    shows only when it is opened (see :func:`extract_zip`). Where archives are kept for good
    (:func:`.env.archives_dir`, on Google Drive with ``use_drive``) the file goes there instead,
    under its own name: the returned path says where."""
    dest = Path(dest) if archives_dir() is None else archives_dir() / Path(dest).name
    digests = {name: value.lower() for name, value in (("sha256", sha256), ("md5", md5)) if value}
    if dest.is_file() and dest.stat().st_size > 0:
        return _check_existing(url, dest, size, digests)
    with file_lock(dest):  # one writer per .part file
        if dest.is_file() and dest.stat().st_size > 0:  # another process just finished it
            return _check_existing(url, dest, size, digests)
        part = dest.with_name(dest.name + ".part")
        total = _fetch(url, dest, part, timeout, progress, size, bool(digests), log)
        _check_download(url, dest, part, size if size is not None else total, digests)
        os.replace(part, dest)
        Path(f"{part}.validator").unlink(missing_ok=True)  # without its part, a record is ignored
        if digests:
            _verified(dest, digests, record=True)
    return dest


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """The hex digest (``algorithm``: "sha256", "md5") of a file, read in 1 MiB chunks (a multi-GB
    archive never sits in memory). About 1 GB/s from cached files: an 18 GB archive takes 20 s to
    a few minutes."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def discard_archive(path: Path, keep: bool = False) -> None:
    """Delete an archive once extracted, unless ``keep`` or archives are kept for good."""
    if not keep and archives_dir() is None:
        path.unlink()


def extract_zip(path: str | Path, dest: str | Path, members=None, progress: bool = True) -> Path:
    """Extract the zip archive ``path`` (all of it, or the names in ``members``) into ``dest``,
    with a progress bar over the files (FreiHAND's 167,000 would otherwise look like a hang).

    A file that is not a readable zip (cut short, an HTML page saved under a .zip name, a
    damaged member) raises :class:`BrokenArchiveError` naming it and saying to delete it and
    download it again, instead of a bare ``BadZipFile``."""
    path, dest = Path(path), Path(dest)
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.infolist() if members is None else members
            for member in progress_bar(names, progress, desc=f"extracting {path.name}", unit="file"):
                zf.extract(member, dest)
    except (zipfile.BadZipFile, EOFError, zlib.error, KeyError) as err:
        # BadZipFile: no readable table of contents (a cut file) or a bad CRC; EOFError and
        # zlib.error: a member's data ends early or is garbled; KeyError: a member is missing.
        size = path.stat().st_size if path.is_file() else 0
        raise BrokenArchiveError(
            f"{path} ({size:,} bytes) is not a complete zip archive ({type(err).__name__}: "
            f"{err}): the download or copy is cut short or damaged. Delete {path} and download "
            "it again (files already extracted from it may be incomplete too).") from err
    return dest


# The steps of download_file -----------------------------------------------------------------------

def _check_existing(url: str, dest: Path, size: int | None, digests: dict) -> Path:
    """``dest``, unless the existing file fails the checks the caller knows."""
    have = dest.stat().st_size
    if size is not None and have != size:
        resume = (f", or rename it to {dest.name}.part to resume the download from its {have:,} "
                  "bytes" if have < size and digests else "")
        raise DownloadError(
            f"{dest} exists but holds {have:,} bytes, not the {size:,} bytes of {url}: an "
            "incomplete or different file (an earlier download may have been cut short). "
            f"Delete it and run again to download it anew{resume}.")
    if digests and not _verified(dest, digests):
        for name, want in digests.items():
            if (digest := file_digest(dest, name)) != want:
                raise DownloadError(
                    f"{dest} exists but its {HASHES[name]} is {digest}, not {want} (the file of "
                    f"{url}): it is damaged or a different file. Delete it and run again to "
                    "download it anew.")
        _verified(dest, digests, record=True)
    return dest


def _fetch(url: str, dest: Path, part: Path, timeout: float, progress: bool, size: int | None,
           checked: bool, log) -> int | None:
    """Bring ``part`` to the length the server announces (returned, None if unknown), resuming
    what an earlier call left. Raises :class:`DownloadError` when the transfer fails."""
    offset = part.stat().st_size if part.is_file() else 0
    record = Path(f"{part}.validator")
    validator = record.read_text().strip() if offset and record.is_file() else ""
    # A part of unknown version may hold an older file: appending the new one's rest would splice
    # two files. Only a digest catches that (deleting the part), so only with one is it resumed.
    why = "" if validator or checked else "no record of the file version they came from"
    resume = 0 if why else offset  # the byte to ask for; a 200 reply rewrites the part
    for _ in range(2):  # the second try, from byte 0, when a range reply cannot be appended
        request = urllib.request.Request(url)
        if resume:
            request.add_header("Range", f"bytes={resume}-")
            if validator:  # the rest only while the file is the version the part came from
                request.add_header("If-Range", validator)
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except (OSError, http.client.HTTPException) as err:  # HTTPError is an OSError
            if getattr(err, "code", None) == 416 and resume:
                # Range Not Satisfiable: the part file reaches (or passes) the end of the file.
                _, total = _content_range(err.headers.get("Content-Range"))
                err.close()
                if total == resume:
                    return total
                resume, why = 0, "they reach past the end of the file"
                continue
            raise DownloadError(f"could not download {url} to {dest}: {err}. This needs internet "
                                "access (Colab has it); or download the file by hand and put it "
                                f"there. {_kept(part)}") from err
        with response:
            status = getattr(response, "status", None) or 200  # file:// URLs have no status
            length = response.headers.get("Content-Length")
            length = int(length) if length and length.strip().isdigit() else None
            if status == 206:
                start, total = _content_range(response.headers.get("Content-Range"))
                if start != resume:
                    resume, why = 0, "the server sent another range than the one asked for"
                    continue
                if total is None and length is not None:
                    total = start + length
            else:
                if offset:  # 200: the whole file, also after a Range; the part is rewritten
                    why = why or "the file changed on the server, or the server does not resume"
                    log(f"{part}: its {offset:,} bytes are not resumed ({why}); the download of "
                        f"{url} starts again from byte 0.")
                start, total = 0, length
            content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip()
            if dest.suffix.lower() in BINARY_SUFFIXES and content_type.lower() == "text/html":
                raise _html_error(url, dest, part, f"Content-Type {content_type}")
            if size is not None and total is not None and total != size:
                raise DownloadError(
                    f"{url}: the server announces {total:,} bytes, but {dest.name} should be "
                    f"{size:,} bytes: the URL now serves a different file or an error page. "
                    f"Open the URL in a browser to see what it serves. {_kept(part)}")
            if start == 0:  # a 206 continues the recorded version
                _record_validator(part, response.headers)
            _stream(url, dest, part, response, start, total, progress)
            return total
    raise DownloadError(f"{url}: the server answered a plain request for {dest.name} with a "
                        f"partial range; download the file by hand and put it at {dest}.")


def _stream(url: str, dest: Path, part: Path, response, start: int, total: int | None,
            progress: bool) -> None:
    """Write the body of ``response`` into ``part`` from byte ``start``."""
    received = start
    with progress_bar(None, progress, total=total, initial=start, unit="B", unit_scale=True,
                      desc=dest.name) as bar:
        try:
            with open(part, "ab" if start else "wb") as f:
                # read1: read(n) of a chunked body loses what it gathered if the connection breaks
                while chunk := response.read1(CHUNK):
                    if received == 0 and _looks_like_html(chunk, dest):
                        f.close()
                        part.unlink()
                        raise _html_error(url, dest, part, f"its first bytes are {chunk[:40]!r}")
                    f.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except DownloadError:
            raise  # an HTML page: already says what arrived
        except (OSError, http.client.HTTPException) as err:
            of = f" of {total:,}" if total is not None else ""
            raise DownloadError(f"the download of {url} broke off after {received:,}{of} bytes "
                                f"({err}). Run the same call again. {_kept(part)}") from err


def _check_download(url: str, dest: Path, part: Path, size: int | None, digests: dict) -> None:
    """Raise unless the finished ``part`` has the expected (or announced) size and digests."""
    got = part.stat().st_size
    if size is not None and got < size:
        raise DownloadError(f"{url}: the connection closed after {got:,} of {size:,} bytes. Run "
                            f"the same call again. {_kept(part)}")
    if size is not None and got > size:
        part.unlink()
        raise DownloadError(f"{url}: received {got:,} bytes, expected {size:,}: not the expected "
                            "file, so it was deleted. Run the same call again; if that fails too, "
                            "open the URL in a browser to see what it serves.")
    if size is None and dest.suffix.lower() in (".zip", ".task") and not zipfile.is_zipfile(part):
        # No length announced, so a connection closed early looks like the end of the file; but
        # a cut zip (a MediaPipe .task is one) lacks its table of contents, stored at the end.
        raise DownloadError(f"{url}: the {got:,} bytes received (no length announced) are not a "
                            "complete zip: the connection probably closed early. Run the same "
                            f"call again. {_kept(part)}")
    for name, want in digests.items():
        if (digest := file_digest(part, name)) != want:
            part.unlink()
            raise DownloadError(
                f"{url}: the {HASHES[name]} of the {got:,} bytes received is {digest}, expected "
                f"{want}: a damaged or different file, so it was deleted. Run the same call "
                "again to download it anew; if that fails too, the file on the server changed.")


def _kept(part: Path) -> str:
    """What a failed download left on disk, in words, and what the next call does with it."""
    have = part.stat().st_size if part.is_file() else 0
    return (f"The {have:,} bytes received so far are kept in {part}; the next call resumes from "
            "there unless the file may have changed on the server." if have else
            "No bytes were kept: the next call starts from byte 0.")


def _record_validator(part: Path, headers) -> None:
    """Note beside ``part`` which version of the file fills it: its strong ETag, else its
    Last-Modified date (a weak ``W/`` ETag is not allowed in If-Range), else nothing ("")."""
    etag = headers.get("ETag") or ""
    validator = etag if etag and not etag.startswith("W/") else headers.get("Last-Modified", "")
    atomic_write(Path(f"{part}.validator"), lambda f: f.write(validator), mode="w")


def _html_error(url: str, dest: Path, part: Path, evidence: str) -> DownloadError:
    return DownloadError(
        f"{url} sent an HTML page ({evidence}), not the file {dest.name}: usually a quota, "
        "login or error page. Open the URL in a browser to read it, wait and run again, or "
        f"download the file by hand and put it at {dest}. {_kept(part)}")


def _looks_like_html(chunk: bytes, dest: Path) -> bool:
    """Whether ``dest`` should be binary but its first bytes, ``chunk``, begin an HTML page."""
    head = chunk[:256].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return dest.suffix.lower() in BINARY_SUFFIXES and head.startswith((b"<!doctype", b"<html"))


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of ``bytes 100-299/300``; ``None`` where absent or ``*``."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", header or "")
    if not match:
        return None, None
    start, total = match.groups()
    return (int(start) if start else None), (int(total) if total != "*" else None)


def _verified(dest: Path, digests: dict, record: bool = False) -> bool:
    """Whether ``dest`` matched ``digests`` and keeps the size and modification time noted with
    them in ``<dest>.verified`` by ``record=True``: hashing (:func:`file_digest`) is too slow to
    repeat at every call, while sizes alone miss damaged bytes of the right length."""
    st = dest.stat()
    path = dest.with_name(dest.name + ".verified")
    stamp = " ".join(f"{name}={value}" for name, value in digests.items())
    stamp += f" size={st.st_size} mtime_ns={st.st_mtime_ns}\n"
    if record:
        path.write_text(stamp)
    return path.is_file() and path.read_text() == stamp
