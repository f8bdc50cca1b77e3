"""downloads: files land complete or not at all; missing weights fall back with a message."""

from __future__ import annotations

import hashlib
import http.server
import io
import multiprocessing
import random
import threading
import time
import zipfile

import pytest

import handpose_utils.downloads as dl
from handpose_utils.downloads import download_file
from handpose_utils.pretrained import imagenet_state_dict


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
    assert str(dest) in str(err.value) and "No bytes were kept" in str(err.value)
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
# answer Range requests (206) or ignore them, and honour If-Range.

PAYLOAD = random.Random(0).randbytes(300_000)
CUT = 100_000  # bytes a cut response sends before it closes the connection
CHUNK_CUT = 120_000  # bytes a dropped chunked response delivers: two chunks and part of a third
CLOSE_CUT = 123_456  # bytes a cut response without any length sends before it closes
HTML_PAGE = b"<!DOCTYPE html>\n<html><body>Quota exceeded, try again later</body></html>\n"


def _stored_zip(size):
    """A zip archive (one stored member of random bytes) of exactly ``size`` bytes."""
    def build(n):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("hand.bin", random.Random(2).randbytes(n))
        return buf.getvalue()
    data = build(size - len(build(0)))  # a stored member adds a fixed overhead
    assert len(data) == size
    return data


class _Handler(http.server.BaseHTTPRequestHandler):
    """``/<mode>/<name>``: ``full`` honours Range, ``norange`` ignores it, ``cut`` announces the
    whole payload but sends CUT bytes, ``flaky`` cuts the first plain GET and honours Range,
    ``chunked`` is ``flaky`` with the first body chunked and dropped inside its third chunk
    (CHUNK_CUT bytes), ``close`` is ``flaky`` with the first body sent without any length and
    cut after CLOSE_CUT bytes, ``slow`` is ``full`` sent in 10 pieces 20 ms apart, ``html`` sends
    an HTML page as text/html, ``htmlbytes`` as application/octet-stream. The file is
    ``server.payload``; replies carry ``server.etag`` and ``server.last_modified`` when set, and a
    Range whose If-Range names neither gets the whole file (200), as RFC 9110 says."""

    def do_GET(self):  # noqa: N802 - the name http.server calls
        mode = self.path.split("/")[1]
        rng = self.headers.get("Range")
        srv = self.server
        srv.seen.append((mode, rng))
        srv.if_range.append(self.headers.get("If-Range"))
        self.close_connection = True
        if mode in ("html", "htmlbytes"):
            kind = "text/html; charset=utf-8" if mode == "html" else "application/octet-stream"
            return self._send(200, HTML_PAGE, {"Content-Type": kind})
        payload = srv.payload
        version = {k: v for k, v in [("ETag", srv.etag), ("Last-Modified", srv.last_modified)] if v}
        pieces = 10 if mode == "slow" else 1
        unchanged = self.headers.get("If-Range") in (None, srv.etag, srv.last_modified)
        if rng and unchanged and mode in ("full", "flaky", "chunked", "close", "slow"):
            start = int(rng.removeprefix("bytes=").rstrip("-"))
            if start >= len(payload):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(payload)}"})
            return self._send(206, payload[start:], {
                "Content-Range": f"bytes {start}-{len(payload) - 1}/{len(payload)}", **version},
                pieces=pieces)
        if mode == "chunked" and not rng:
            return self._send_chunked_and_drop(payload, version)
        if mode == "close" and not rng:
            return self._send(200, payload, version, send=CLOSE_CUT, length=False)
        if mode == "cut" or (mode == "flaky" and not rng):
            return self._send(200, payload, version, send=CUT)
        return self._send(200, payload, version, pieces=pieces)

    def _send(self, code, body, headers, send=None, pieces=1, length=True):
        self.send_response(code)
        if length:
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

    def _send_chunked_and_drop(self, body, headers):
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Content-Type", "application/zip")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        for start in (0, 50_000):
            self.wfile.write(b"c350\r\n" + body[start:start + 50_000] + b"\r\n")  # 0xc350 = 50,000
        self.wfile.write(b"c350\r\n" + body[100_000:CHUNK_CUT])  # the connection closes here
        self.wfile.flush()

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture
def server():
    """The base URL of a server on 127.0.0.1 (an ephemeral port); ``server.seen`` lists the
    (mode, Range header) of every request, ``server.if_range`` its If-Range header."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.seen, httpd.if_range = [], []
    httpd.payload, httpd.etag, httpd.last_modified = PAYLOAD, '"v1"', None
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
    (tmp_path / "archive.zip.part.validator").write_text('"v1"')
    messages = []
    dl.download_file(_url(server, "norange"), dest, progress=False, log=messages.append)
    assert dest.read_bytes() == PAYLOAD  # the 200 reply replaced the stale part, not appended
    assert server.seen == [("norange", "bytes=33-")]
    assert len(messages) == 1 and "starts again from byte 0" in messages[0]


def test_complete_part_file_is_finished_without_downloading_again(server, tmp_path):
    dest = tmp_path / "archive.zip"
    (tmp_path / "archive.zip.part").write_bytes(PAYLOAD)  # cut off just before the rename
    (tmp_path / "archive.zip.part.validator").write_text('"v1"')
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
    real = dl.file_digest
    monkeypatch.setattr(dl, "file_digest", lambda p, name: hashed.append(p) or real(p, name))
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


# --------------------------------------------------------------------------------------------
# Resuming only the same version of a file, and saying exactly what a failure kept.

@pytest.mark.parametrize("etag, last_modified, sent", [
    ('"v1"', None, '"v1"'),
    # a weak ETag is not allowed in If-Range: the date is sent instead
    ('W/"v1"', "Sat, 30 May 2026 10:00:00 GMT", "Sat, 30 May 2026 10:00:00 GMT"),
])
def test_resume_sends_if_range_with_the_first_responses_validator(server, tmp_path, etag,
                                                                  last_modified, sent):
    server.etag, server.last_modified = etag, last_modified
    dest = tmp_path / "archive.zip"
    url = _url(server, "flaky")
    with pytest.raises(OSError):
        dl.download_file(url, dest, progress=False)
    assert dl.download_file(url, dest, progress=False) == dest
    assert dest.read_bytes() == PAYLOAD
    assert server.seen == [("flaky", None), ("flaky", f"bytes={CUT}-")]
    assert server.if_range == [None, sent]
    assert not (tmp_path / "archive.zip.part.validator").exists()  # removed with the part


def test_file_changed_on_the_server_restarts_instead_of_splicing(server, tmp_path):
    dest = tmp_path / "archive.zip"
    url = _url(server, "flaky")
    with pytest.raises(OSError):
        dl.download_file(url, dest, progress=False)  # CUT bytes of version 1 kept
    new = random.Random(5).randbytes(len(PAYLOAD))
    server.payload, server.etag = new, '"v2"'
    messages = []
    dl.download_file(url, dest, progress=False, size=len(new), log=messages.append)
    assert dest.read_bytes() == new  # not PAYLOAD[:CUT] + new[CUT:]
    assert server.if_range == [None, '"v1"']
    assert len(messages) == 1 and "starts again from byte 0" in messages[0]
    assert f"{CUT:,}" in messages[0]


def test_part_of_unknown_version_restarts_unless_a_digest_would_catch_a_splice(server, tmp_path):
    dest = tmp_path / "archive.zip"
    part = tmp_path / "archive.zip.part"
    part.write_bytes(PAYLOAD[:CUT])  # no .validator beside it: its version is unknown
    messages = []
    dl.download_file(_url(server, "full"), dest, progress=False, log=messages.append)
    assert dest.read_bytes() == PAYLOAD
    assert server.seen == [("full", None)]
    assert len(messages) == 1 and str(part) in messages[0] and "byte 0" in messages[0]

    dest.unlink()
    part.write_bytes(PAYLOAD[:CUT])
    good = hashlib.sha256(PAYLOAD).hexdigest()
    dl.download_file(_url(server, "full"), dest, progress=False, sha256=good)
    assert dest.read_bytes() == PAYLOAD
    assert server.seen[1:] == [("full", f"bytes={CUT}-")]  # resumed: the SHA-256 checks it


def test_md5_mismatch_is_refused_and_a_match_is_recorded(server, tmp_path):
    dest = tmp_path / "archive.zip"
    url = _url(server, "full")
    good = hashlib.md5(PAYLOAD).hexdigest()
    with pytest.raises(OSError, match="MD5") as err:
        dl.download_file(url, dest, progress=False, md5="0" * 32)
    assert url in str(err.value) and good in str(err.value)
    assert not dest.exists() and not (tmp_path / "archive.zip.part").exists()
    dl.download_file(url, dest, progress=False, size=len(PAYLOAD), md5=good.upper())
    assert dest.read_bytes() == PAYLOAD
    assert f"md5={good}" in (tmp_path / "archive.zip.verified").read_text()
    dest.write_bytes(PAYLOAD[::-1])  # same size, other bytes
    with pytest.raises(OSError, match="MD5"):
        dl.download_file(url, dest, progress=False, size=len(PAYLOAD), md5=good)


def test_cut_body_without_any_length_is_refused_and_resumed(server, tmp_path):
    """The server sends no Content-Length and closes after CLOSE_CUT of 300,000 bytes: the
    short file is not taken for the archive, and the message says what is on disk."""
    server.payload = _stored_zip(300_000)
    dest = tmp_path / "archive.zip"
    part = tmp_path / "archive.zip.part"
    url = _url(server, "close")
    with pytest.raises(OSError, match="not a complete zip") as err:
        dl.download_file(url, dest, progress=False)
    assert not dest.exists() and part.stat().st_size == CLOSE_CUT
    assert f"The {CLOSE_CUT:,} bytes received so far are kept in {part}" in str(err.value)
    assert dl.download_file(url, dest, progress=False) == dest
    assert dest.read_bytes() == server.payload
    assert server.seen == [("close", None), ("close", f"bytes={CLOSE_CUT}-")]

    with pytest.raises(OSError, match=f"{CLOSE_CUT:,} of 300,000 bytes"):  # a known size
        dl.download_file(url, tmp_path / "sized.zip", progress=False, size=300_000)


def test_dropped_chunked_transfer_keeps_the_bytes_it_reports(server, tmp_path):
    dest = tmp_path / "archive.zip"
    part = tmp_path / "archive.zip.part"
    url = _url(server, "chunked")
    with pytest.raises(OSError, match="broke off") as err:
        dl.download_file(url, dest, progress=False)
    have = part.stat().st_size
    assert have == CHUNK_CUT and part.read_bytes() == PAYLOAD[:have]
    assert f"The {have:,} bytes received so far are kept in {part}" in str(err.value)
    assert dl.download_file(url, dest, progress=False) == dest
    assert dest.read_bytes() == PAYLOAD
    assert server.seen == [("chunked", None), ("chunked", f"bytes={CHUNK_CUT}-")]


def test_dataset_downloads_pass_the_servers_sizes_and_md5(tmp_path, monkeypatch):
    """Sizes as the servers reported them (``curl -I``, 2026-05-31); the annotations' ETag is
    their MD5."""
    from handpose_utils.datasets import coco, freihand, rhd
    from handpose_utils.plots import real_hands

    asked = {}

    def fake_download(url, dest, **checks):
        asked[url.rsplit("/", 1)[1]] = checks
        raise OSError("no network in this test")

    for module in (freihand, rhd, coco):  # real_hands downloads through freihand
        monkeypatch.setattr(module, "download_file", fake_download)
    calls = [lambda: freihand.download_freihand(tmp_path / "a", evaluation=False),
             lambda: real_hands.download_freihand_evaluation(tmp_path / "b"),
             lambda: rhd.download_rhd(tmp_path / "c"),
             lambda: coco.download_coco(tmp_path / "d")]
    (tmp_path / "e" / "FreiHAND_pub_v2").mkdir(parents=True)
    (tmp_path / "e" / "FreiHAND_pub_v2" / "training_xyz.json").write_text("[]")
    calls.append(lambda: freihand.download_freihand(tmp_path / "e", evaluation=True))
    for split in ("train", "val"):  # annotations present: the image zips come next
        root = tmp_path / f"coco_{split}"
        (root / "annotations").mkdir(parents=True)
        for s in ("train", "val"):
            (root / "annotations" / f"person_keypoints_{s}2017.json").write_text("{}")
        calls.append(lambda root=root, split=split: coco.download_coco(root, splits=(split,)))
    for call in calls:
        with pytest.raises(OSError, match="no network"):
            call()
    assert asked == {
        "FreiHAND_pub_v2.zip": {"size": 3_881_833_583},
        "FreiHAND_pub_v2_eval.zip": {"size": 758_382_230},
        "RHD_v1-1.zip": {"size": 7_080_690_299},
        "annotations_trainval2017.zip": {"size": 252_907_541,
                                         "md5": "f4bbac642086de4f52a3fdda2de5fa2c"},
        "val2017.zip": {"size": 815_585_330},
        "train2017.zip": {"size": 19_336_861_798},
    }


def test_notebook_08_fetches_only_freihands_evaluation_archive(tmp_path, monkeypatch):
    """``download_freihand_evaluation`` is ``download_freihand(training=False)``: the 724 MB
    archive alone, extracted into ``<root>/freihand/FreiHAND_pub_v2``, then deleted."""
    from handpose_utils.datasets import freihand
    from handpose_utils.plots import real_hands

    archive = tmp_path / "eval.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("evaluation_xyz.json", "evaluation_K.json", "evaluation/rgb/00000000.jpg"):
            zf.writestr(f"FreiHAND_pub_v2_eval/{name}", "[]")
    fetched = []

    def fake_download(url, dest, **checks):
        fetched.append(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(archive.read_bytes())
        return dest

    monkeypatch.setattr(freihand, "download_file", fake_download)
    root = real_hands.download_freihand_evaluation(tmp_path / "real")
    assert fetched == [freihand.FREIHAND_EVAL_URL] and root == tmp_path / "real" / "freihand"
    assert (root / "FreiHAND_pub_v2" / "evaluation" / "rgb" / "00000000.jpg").is_file()
    assert sorted(p.name for p in root.iterdir()) == ["FreiHAND_pub_v2"]  # zip and staging gone
    assert real_hands.download_freihand_evaluation(tmp_path / "real") == root and len(fetched) == 1


def test_extract_zip_takes_the_members_asked_for(tmp_path):
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("keep/a.txt", "a")
        zf.writestr("skip/b.txt", "b")
    dl.extract_zip(archive, tmp_path / "some", members=["keep/a.txt"], progress=False)
    assert [p.relative_to(tmp_path / "some").as_posix()
            for p in (tmp_path / "some").rglob("*.txt")] == ["keep/a.txt"]
    dl.extract_zip(archive, tmp_path / "all", members=[], progress=False)  # none asked, none taken
    assert not (tmp_path / "all").exists() or not any((tmp_path / "all").rglob("*.txt"))
    dl.extract_zip(archive, tmp_path / "every")
    assert sorted(p.name for p in (tmp_path / "every").rglob("*.txt")) == ["a.txt", "b.txt"]


def test_kept_archives_survive_a_new_runtime_and_are_not_fetched_again(server, tmp_path,
                                                                       monkeypatch):
    """With archives kept for good (Google Drive, by ``use_drive``), the download lands there,
    extraction does not delete it, and a fresh data folder gets it without a request."""
    kept = tmp_path / "drive" / "downloads"
    monkeypatch.setenv("HANDPOSE_ARCHIVES", str(kept))
    got = dl.download_file(_url(server, "full"), tmp_path / "data" / "archive.zip", progress=False)
    assert got == kept / "archive.zip" and got.read_bytes() == PAYLOAD
    assert not (tmp_path / "data" / "archive.zip").exists()
    dl.discard_archive(got)
    assert got.is_file(), "an archive kept on Drive must outlive its extraction"
    requests = len(server.seen)
    again = dl.download_file(_url(server, "full"), tmp_path / "new-runtime" / "archive.zip",
                             progress=False)
    assert again == got and len(server.seen) == requests
    monkeypatch.delenv("HANDPOSE_ARCHIVES")
    dl.discard_archive(got)
    assert not got.exists(), "without kept archives an extracted one is deleted"
