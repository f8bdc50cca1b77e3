"""downloads: files land complete or not at all; missing weights fall back with a message."""

from __future__ import annotations

import hashlib
import http.server
import multiprocessing
import random
import threading
import time
import zipfile

import pytest

import handpose_utils.downloads as dl
from handpose_utils.downloads import download_file, imagenet_state_dict


def test_download_file_writes_the_whole_file_and_skips_an_existing_one(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 3_000_000)
    dest = tmp_path / "out" / "archive.zip"
    assert download_file(src.as_uri(), dest, progress=False) == dest
    assert dest.read_bytes() == src.read_bytes()
    assert not dest.with_name("archive.zip.part").exists()
    src.write_bytes(b"changed")  # an existing download is not fetched again
    download_file(src.as_uri(), dest, progress=False)
    assert dest.stat().st_size == 3_000_000


def test_failed_download_names_url_and_destination_and_leaves_nothing(tmp_path):
    url = (tmp_path / "missing.zip").as_uri()
    dest = tmp_path / "data" / "missing.zip"
    with pytest.raises(OSError, match=r"could not download .*missing\.zip.*internet") as err:
        download_file(url, dest, progress=False)
    assert str(dest) in str(err.value)
    assert not dest.exists() and not dest.with_name("missing.zip.part").exists()


class _OfflineWeights:
    url = "https://download.pytorch.org/models/resnet50-0676ba61.pth"

    def get_state_dict(self, **kwargs):
        raise OSError("name resolution failed")


class _CachedWeights:
    url = "https://download.pytorch.org/models/tiny.pth"

    def get_state_dict(self, **kwargs):
        assert kwargs["check_hash"] is True
        return {"w": 1}


def test_imagenet_weights_fall_back_with_a_message():
    messages = []
    assert imagenet_state_dict(_OfflineWeights(), "the test backbone", log=messages.append) is None
    text = messages[0]
    assert "name resolution failed" in text and "RANDOM initialisation" in text
    assert "resnet50-0676ba61.pth" in text and "~/.cache/torch/hub/checkpoints" in text
    assert imagenet_state_dict(_CachedWeights(), "x", log=messages.append) == {"w": 1}
    assert len(messages) == 1


# --------------------------------------------------------------------------------------------
# Over HTTP: a real server on 127.0.0.1 that can cut a response short, send an HTML error page,
# answer Range requests (206) or ignore them.

PAYLOAD = random.Random(0).randbytes(300_000)
CUT = 100_000  # bytes a cut response sends before it closes the connection
HTML_PAGE = b"<!DOCTYPE html>\n<html><body>Quota exceeded, try again later</body></html>\n"


class _Handler(http.server.BaseHTTPRequestHandler):
    """``/<mode>/<name>``: ``full`` honours Range, ``norange`` ignores it, ``cut`` announces the
    whole payload but sends CUT bytes, ``flaky`` cuts the first plain GET and honours Range,
    ``slow`` is ``full`` sent in 10 pieces 20 ms apart, ``html`` sends an HTML page as
    text/html, ``htmlbytes`` as application/octet-stream."""

    def do_GET(self):  # noqa: N802 - the name http.server calls
        mode = self.path.split("/")[1]
        rng = self.headers.get("Range")
        self.server.seen.append((mode, rng))
        self.close_connection = True
        if mode in ("html", "htmlbytes"):
            kind = "text/html; charset=utf-8" if mode == "html" else "application/octet-stream"
            return self._send(200, HTML_PAGE, {"Content-Type": kind})
        pieces = 10 if mode == "slow" else 1
        if rng and mode in ("full", "flaky", "slow"):
            start = int(rng.removeprefix("bytes=").rstrip("-"))
            if start >= len(PAYLOAD):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(PAYLOAD)}"})
            return self._send(206, PAYLOAD[start:], {
                "Content-Range": f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"},
                pieces=pieces)
        if mode == "cut" or (mode == "flaky" and not rng):
            return self._send(200, PAYLOAD, {}, send=CUT)
        return self._send(200, PAYLOAD, {}, pieces=pieces)

    def _send(self, code, body, headers, send=None, pieces=1):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        headers.setdefault("Content-Type", "application/zip")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        body = body[:send]
        step = -(-len(body) // pieces) or 1
        for i in range(0, len(body), step):
            if i:
                time.sleep(0.02)
            self.wfile.write(body[i:i + step])
            self.wfile.flush()

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture
def server():
    """The base URL of a server on 127.0.0.1 (an ephemeral port); ``server.seen`` lists the
    (mode, Range header) of every request."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.seen = []
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _url(httpd, mode, name="archive.zip"):
    return f"http://127.0.0.1:{httpd.server_address[1]}/{mode}/{name}"


def test_plain_http_download_writes_the_file(server, tmp_path):
    dest = tmp_path / "archive.zip"
    assert dl.download_file(_url(server, "full"), dest, progress=False) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_name("archive.zip.part").exists()


def _download(url, dest):
    dl.download_file(url, dest, progress=False)


def test_two_processes_downloading_one_file_both_succeed(server, tmp_path):
    """Two notebooks fetching the same archive at once: the second waits for the first's
    download and finds the finished file, instead of appending to the same ``.part``."""
    dest = tmp_path / "data" / "archive.zip"
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    procs = [ctx.Process(target=_download, args=(_url(server, "slow"), dest)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_name("archive.zip.part").exists()


def test_truncated_response_is_an_error_naming_url_and_byte_counts(server, tmp_path):
    dest = tmp_path / "archive.zip"
    url = _url(server, "cut")
    with pytest.raises(OSError) as err:
        dl.download_file(url, dest, progress=False)
    msg = str(err.value)
    assert url in msg and f"{CUT:,}" in msg and f"{len(PAYLOAD):,}" in msg
    assert "again" in msg  # says what to do
    assert not dest.exists()


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    dest = tmp_path / "archive.zip"
    part = tmp_path / "archive.zip.part"
    url = _url(server, "flaky")
    with pytest.raises(OSError, match="resume"):
        dl.download_file(url, dest, progress=False)
    assert not dest.exists() and part.stat().st_size == CUT
    assert dl.download_file(url, dest, progress=False) == dest
    assert dest.read_bytes() == PAYLOAD and not part.exists()
    assert server.seen == [("flaky", None), ("flaky", f"bytes={CUT}-")]


def test_server_that_ignores_range_restarts_the_file(server, tmp_path):
    dest = tmp_path / "archive.zip"
    (tmp_path / "archive.zip.part").write_bytes(b"stale bytes from another download")
    dl.download_file(_url(server, "norange"), dest, progress=False)
    assert dest.read_bytes() == PAYLOAD  # the 200 reply replaced the stale part, not appended
    assert server.seen == [("norange", "bytes=33-")]


def test_complete_part_file_is_finished_without_downloading_again(server, tmp_path):
    dest = tmp_path / "archive.zip"
    (tmp_path / "archive.zip.part").write_bytes(PAYLOAD)  # cut off just before the rename
    dl.download_file(_url(server, "full"), dest, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.seen == [("full", f"bytes={len(PAYLOAD)}-")]  # answered 416: nothing left


@pytest.mark.parametrize("mode", ["html", "htmlbytes"])
def test_html_page_instead_of_an_archive_is_rejected(server, tmp_path, mode):
    dest = tmp_path / "archive.zip"
    url = _url(server, mode)
    with pytest.raises(OSError, match="HTML") as err:
        dl.download_file(url, dest, progress=False)
    assert url in str(err.value)
    assert not dest.exists() and not (tmp_path / "archive.zip.part").exists()


def test_known_size_mismatch_is_an_error(server, tmp_path):
    dest = tmp_path / "archive.zip"
    url = _url(server, "full")
    with pytest.raises(OSError) as err:
        dl.download_file(url, dest, progress=False, size=len(PAYLOAD) + 1)
    msg = str(err.value)
    assert url in msg and f"{len(PAYLOAD):,}" in msg and f"{len(PAYLOAD) + 1:,}" in msg
    assert not dest.exists()


def test_sha256_mismatch_is_an_error_and_a_match_is_accepted(server, tmp_path):
    dest = tmp_path / "archive.zip"
    url = _url(server, "full")
    with pytest.raises(OSError, match="SHA-256") as err:
        dl.download_file(url, dest, progress=False, sha256="0" * 64)
    assert url in str(err.value) and hashlib.sha256(PAYLOAD).hexdigest() in str(err.value)
    assert not dest.exists() and not (tmp_path / "archive.zip.part").exists()
    good = hashlib.sha256(PAYLOAD).hexdigest()
    dl.download_file(url, dest, progress=False, size=len(PAYLOAD), sha256=good)
    assert dest.read_bytes() == PAYLOAD


def test_existing_file_is_trusted_only_when_it_passes_the_known_checks(server, tmp_path,
                                                                         monkeypatch):
    dest = tmp_path / "archive.zip"
    url = _url(server, "full")
    dest.write_bytes(PAYLOAD[:CUT])  # e.g. a cut download an older version renamed
    with pytest.raises(OSError, match="[Dd]elete") as err:
        dl.download_file(url, dest, progress=False, size=len(PAYLOAD))
    assert str(dest) in str(err.value) and f"{CUT:,}" in str(err.value)
    with pytest.raises(OSError, match="SHA-256"):
        dl.download_file(url, dest, progress=False, sha256=hashlib.sha256(PAYLOAD).hexdigest())
    assert dest.read_bytes() == PAYLOAD[:CUT]  # the user's file is reported, never deleted
    assert server.seen == []

    dest.write_bytes(PAYLOAD)
    hashed = []
    real = dl.file_sha256
    monkeypatch.setattr(dl, "file_sha256", lambda p: hashed.append(p) or real(p))
    good = hashlib.sha256(PAYLOAD).hexdigest()
    for _ in range(3):
        assert dl.download_file(url, dest, progress=False, size=len(PAYLOAD), sha256=good) == dest
    assert len(hashed) == 1  # hashed once, then the .verified record is trusted
    assert server.seen == []


def _zip_bytes(tmp_path):
    path = tmp_path / "good.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("top/a.txt", "hello" * 1000)
        zf.writestr("top/b.bin", random.Random(1).randbytes(50_000))
    return path.read_bytes()


def test_broken_zip_names_its_path_and_says_delete(tmp_path):
    data = _zip_bytes(tmp_path)
    good = tmp_path / "ok.zip"
    good.write_bytes(data)
    dl.extract_zip(good, tmp_path / "out")
    assert (tmp_path / "out" / "top" / "a.txt").read_text() == "hello" * 1000
    for name, content in [("cut.zip", data[: len(data) // 2]), ("page.zip", HTML_PAGE)]:
        bad = tmp_path / name
        bad.write_bytes(content)
        with pytest.raises(OSError, match="[Dd]elete") as err:
            dl.extract_zip(bad, tmp_path / "out2")
        assert str(bad) in str(err.value)


def test_dataset_downloads_report_a_broken_archive(tmp_path):
    from handpose_utils.datasets import coco, freihand, rhd

    # An archive left from an earlier (cut) download: no network is touched.
    fh = tmp_path / "fh" / "FreiHAND_pub_v2.zip"
    fh.parent.mkdir()
    fh.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(OSError, match="[Dd]elete") as err:
        freihand.download_freihand(fh.parent, evaluation=False)
    assert str(fh) in str(err.value)

    cz = tmp_path / "coco" / "annotations_trainval2017.zip"
    cz.parent.mkdir()
    cz.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(OSError, match="[Dd]elete") as err:
        coco.download_coco(cz.parent)
    assert str(cz) in str(err.value)

    # RHD's archive has a known size, so a short one is caught before it is opened.
    rz = tmp_path / "rhd" / "RHD_v1-1.zip"
    rz.parent.mkdir()
    rz.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(OSError, match="[Dd]elete") as err:
        rhd.download_rhd(rz.parent)
    assert str(rz) in str(err.value)
