"""downloads: files land complete or not at all; missing weights fall back with a message."""

from __future__ import annotations

import pytest

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
