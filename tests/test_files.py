import pytest

from cifarcam.core.files import atomic_output


def test_a_finished_write_lands_under_its_name(tmp_path):
    with atomic_output(tmp_path / "out" / "metrics.json") as partial:
        partial.write_text("{}")
    assert (tmp_path / "out" / "metrics.json").read_text() == "{}"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["metrics.json"]


def test_a_failed_write_leaves_nothing_and_keeps_no_partial(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "cam") as partial:
            partial.mkdir()
            (partial / "gray_cam.png").write_bytes(b"half")
            raise RuntimeError("killed halfway")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_replaces_the_previous_one_whole(tmp_path):
    (tmp_path / "cam").mkdir()
    (tmp_path / "cam" / "stale.png").write_bytes(b"old")
    with atomic_output(tmp_path / "cam") as partial:
        partial.mkdir()
        (partial / "fresh.png").write_bytes(b"new")
    assert [p.name for p in (tmp_path / "cam").iterdir()] == ["fresh.png"]


def test_the_partial_name_keeps_the_suffix_keras_insists_on(tmp_path):
    with atomic_output(tmp_path / "rgb.keras") as partial:
        assert partial.suffix == ".keras" and partial.parent == tmp_path
        partial.write_bytes(b"model")
