"""The local stack refuses data an older storage layout wrote (its items sit under keys the code no longer
reads) and says how to start over; new and current data directories are marked and accepted."""

from __future__ import annotations

import pytest

from chalicelib.cli import devstack


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setattr(devstack, "DATA_DIR", data)
    monkeypatch.setattr(devstack, "LAYOUT_FILE", data / "layout")
    return data


def test_a_new_data_directory_is_marked_with_the_current_layout(data_dir):
    devstack.check_data_layout()
    assert (data_dir / "layout").read_text() == f"{devstack.DATA_LAYOUT}\n"
    devstack.check_data_layout()  # and accepted next time


def test_data_written_before_layouts_were_marked_is_refused_with_the_way_out(data_dir):
    data_dir.mkdir()
    (data_dir / "services.sqlite3").write_bytes(b"old")
    with pytest.raises(devstack.DataLayoutError) as caught:
        devstack.check_data_layout()
    assert "tally dev reset" in str(caught.value) and "layout 1" in str(caught.value)
    assert not (data_dir / "layout").exists()  # nothing marked: the refusal stands until the reset


def test_an_older_marked_layout_is_refused(data_dir):
    data_dir.mkdir()
    (data_dir / "layout").write_text("1\n")
    with pytest.raises(devstack.DataLayoutError):
        devstack.check_data_layout()
