"""Test finding source images on real files: filters, order, symlinks, errors, scale."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import console.scan
from console.scan import IMAGE_EXTENSIONS, Cut, ScanError, ScanResult, natural_key, scan

AS_ROOT = os.geteuid() == 0  # root reads files whatever their mode says


def touch(folder: Path, *names: str) -> None:
    """Create empty files (and their folders) under `folder`."""
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def relative(result: ScanResult) -> list[str]:
    """Return the found images as paths relative to the scanned root."""
    return [path.relative_to(result.root).as_posix() for path in result.files]


# -- natural order -------------------------------------------------------------------------

def test_natural_key_orders_numbers_by_value_and_ignores_case():
    names = ["img10.png", "IMG2.png", "img1.png", "Img002b.png", "img2a.png", "a.png", "B.png", "1.png"]
    assert sorted(names, key=natural_key) == [
        "1.png", "a.png", "B.png", "img1.png", "IMG2.png", "img2a.png", "Img002b.png", "img10.png"]


def test_natural_key_breaks_ties_deterministically():
    assert natural_key("a.png")[0] == natural_key("A.png")[0]
    assert natural_key("2.png")[0] == natural_key("02.png")[0]
    assert sorted(["a.png", "A.png"], key=natural_key) == sorted(["A.png", "a.png"], key=natural_key)


def test_natural_key_handles_huge_numbers_and_zero():
    long_number = "9" * 300  # beyond what a fixed-width encoding would allow
    assert natural_key("0.png") < natural_key("1.png") < natural_key(f"{long_number}.png")
    assert natural_key("x" + long_number) < natural_key("x1" + "0" * 300)


def test_natural_key_sorts_paths_component_by_component():
    paths = ["a-b/1.png", "a/2.png", "a/10.png", "a.png"]
    assert sorted(paths, key=natural_key) == ["a/2.png", "a/10.png", "a-b/1.png", "a.png"]


# -- what is found -------------------------------------------------------------------------

def test_extensions_match_in_any_letter_case(tmp_path):
    touch(tmp_path, "A.PNG", "b.JpEg", "c.TIFF", "d.webp", "e.Gif", "f.bmp", "g.tif", "h.jpg", "notes.txt")
    result = scan(str(tmp_path))
    assert relative(result) == ["A.PNG", "b.JpEg", "c.TIFF", "d.webp", "e.Gif", "f.bmp", "g.tif", "h.jpg"]
    assert result.skipped == [("notes.txt", "not an image file")]
    assert IMAGE_EXTENSIONS == {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


def test_files_are_absolute_and_natural_sorted_including_subfolders(tmp_path):
    touch(tmp_path, "10.png", "2.png", "1.png", "sub10/1.png", "sub2/1.png", "sub/3.png", "sub/20.png",
          "sub/deep/1.png")
    result = scan(str(tmp_path), recursive=True)
    assert result.root == tmp_path
    assert all(path.is_absolute() and path.is_file() for path in result.files)
    assert relative(result) == ["1.png", "2.png", "10.png", "sub/3.png", "sub/20.png", "sub/deep/1.png",
                                "sub2/1.png", "sub10/1.png"]


def test_without_recursive_subfolders_are_not_entered(tmp_path):
    touch(tmp_path, "1.png", "sub/2.png")
    result = scan(str(tmp_path))
    assert relative(result) == ["1.png"]
    assert result.skipped == []  # a folder is not a "skipped file"


def test_hidden_files_and_folders_are_skipped_silently(tmp_path):
    touch(tmp_path, "1.png", ".hidden.png", ".thumbs/2.png", "sub/.x.png", "sub/3.png")
    result = scan(str(tmp_path), recursive=True)
    assert relative(result) == ["1.png", "sub/3.png"]
    assert result.skipped == []


def test_other_files_are_listed_with_the_reason(tmp_path):
    touch(tmp_path, "1.png", "readme.md", "sub/data.json", "sub/image.png.bak", "noext")
    result = scan(str(tmp_path), recursive=True)
    assert result.skipped == [(name, "not an image file")
                              for name in ["noext", "readme.md", "sub/data.json", "sub/image.png.bak"]]


def test_a_folder_named_like_an_image_is_a_folder(tmp_path):
    touch(tmp_path, "album.png/1.png")
    assert relative(scan(str(tmp_path), recursive=True)) == ["album.png/1.png"]


def test_broken_symlink_is_listed_as_unreadable(tmp_path):
    touch(tmp_path, "1.png")
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")
    result = scan(str(tmp_path))
    assert relative(result) == ["1.png"]
    assert result.skipped == [("gone.png", "broken symlink")]


def test_self_referencing_symlink_is_listed_as_unreadable(tmp_path):
    touch(tmp_path, "1.png")
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    result = scan(str(tmp_path))
    assert relative(result) == ["1.png"]
    assert result.skipped == [("loop.png", "unreadable: too many levels of symbolic links")]


def test_file_without_read_permission(tmp_path):
    touch(tmp_path, "1.png", "locked.png")
    (tmp_path / "locked.png").chmod(0)
    result = scan(str(tmp_path))
    if AS_ROOT:  # os.access says root may read it, and root really can
        assert relative(result) == ["1.png", "locked.png"]
        assert result.skipped == []
    else:
        assert relative(result) == ["1.png"]
        assert result.skipped == [("locked.png", "unreadable: permission denied")]


def test_unreadable_subfolder_is_listed_and_the_scan_goes_on(tmp_path):
    touch(tmp_path, "1.png", "locked/2.png", "open/3.png")
    (tmp_path / "locked").chmod(0)
    try:
        result = scan(str(tmp_path), recursive=True)
    finally:
        (tmp_path / "locked").chmod(0o755)  # so tmp_path can be cleaned up
    if AS_ROOT:
        assert relative(result) == ["1.png", "locked/2.png", "open/3.png"]
        assert result.skipped == []
    else:
        assert relative(result) == ["1.png", "open/3.png"]
        assert result.skipped == [("locked", "unreadable folder")]


def test_fifo_with_an_image_name_is_not_listed(tmp_path):
    touch(tmp_path, "1.png")
    os.mkfifo(tmp_path / "pipe.png")  # opening it later would block a worker forever
    result = scan(str(tmp_path))
    assert relative(result) == ["1.png"]
    assert result.skipped == [("pipe.png", "not a regular file")]


# -- symlinks ------------------------------------------------------------------------------

def test_symlinked_files_are_followed(tmp_path):
    touch(tmp_path, "outside/real.png", "pics/1.png")
    (tmp_path / "pics" / "2.png").symlink_to(tmp_path / "outside" / "real.png")
    assert relative(scan(str(tmp_path / "pics"))) == ["1.png", "2.png"]


def test_symlink_loop_terminates_and_lists_each_image_once(tmp_path):
    touch(tmp_path, "1.png", "sub/2.png", "sub/deeper/3.png")
    (tmp_path / "sub" / "a").symlink_to("..")
    (tmp_path / "sub" / "deeper" / "b").symlink_to(tmp_path / "sub")
    (tmp_path / "self").symlink_to(".")
    result = scan(str(tmp_path), recursive=True)
    assert relative(result) == ["1.png", "sub/2.png", "sub/deeper/3.png"]
    assert result.skipped == []


def test_symlinked_folders_are_followed_when_recursive(tmp_path):
    touch(tmp_path, "elsewhere/1.png", "pics/2.png")
    (tmp_path / "pics" / "more").symlink_to(tmp_path / "elsewhere")
    assert relative(scan(str(tmp_path / "pics"), recursive=True)) == ["2.png", "more/1.png"]
    assert relative(scan(str(tmp_path / "pics"))) == ["2.png"]


def test_a_folder_reachable_twice_is_listed_under_its_real_path(tmp_path):
    touch(tmp_path, "zz/photos/1.png")
    (tmp_path / "alias").symlink_to(tmp_path / "zz" / "photos")  # sorts before the real path
    assert relative(scan(str(tmp_path), recursive=True)) == ["zz/photos/1.png"]


# -- the input path ------------------------------------------------------------------------

def test_single_file_input(tmp_path):
    touch(tmp_path, "pics/photo.JPG", "pics/other.png")
    result = scan(str(tmp_path / "pics" / "photo.JPG"))
    assert result == ScanResult(tmp_path / "pics", [tmp_path / "pics" / "photo.JPG"], [])


def test_single_file_through_a_symlink(tmp_path):
    touch(tmp_path, "real.png")
    (tmp_path / "link.png").symlink_to(tmp_path / "real.png")
    assert scan(str(tmp_path / "link.png")).files == [tmp_path / "link.png"]


def test_single_file_without_read_permission(tmp_path):
    touch(tmp_path, "locked.png")
    (tmp_path / "locked.png").chmod(0)
    if AS_ROOT:
        assert scan(str(tmp_path / "locked.png")).files == [tmp_path / "locked.png"]
    else:
        with pytest.raises(ScanError, match="locked.png cannot be read: permission denied"):
            scan(str(tmp_path / "locked.png"))


def test_tilde_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    touch(tmp_path, "pics/1.png")
    result = scan("~/pics")
    assert result.root == tmp_path / "pics"
    assert result.files == [tmp_path / "pics" / "1.png"]


@pytest.mark.parametrize("value, message", [
    ("", "input path is empty"),
    ("   ", "input path is empty"),
    (None, "input path must be a string"),
    (42, "input path must be a string"),
    ("pics/folder", "input path must be an absolute path: pics/folder"),
    ("./x.png", "input path must be an absolute path: ./x.png"),
    ("/tmp/a\x00b", "input path contains a NUL character"),
])
def test_malformed_input_paths(value, message):
    with pytest.raises(ScanError) as caught:
        scan(value)
    assert str(caught.value).startswith(message)


def test_missing_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ScanError, match=f"^{missing} does not exist$"):
        scan(str(missing))
    with pytest.raises(ScanError, match="does not exist"):
        scan(str(tmp_path / "nope" / "deeper.png"))


def test_path_below_a_file(tmp_path):
    touch(tmp_path, "a.png")
    with pytest.raises(ScanError, match="a.png/b.png does not exist"):
        scan(str(tmp_path / "a.png" / "b.png"))


def test_broken_symlink_input(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ScanError, match="link is a broken symlink"):
        scan(str(tmp_path / "link"))


def test_non_image_file_input(tmp_path):
    touch(tmp_path, "notes.txt")
    with pytest.raises(ScanError) as caught:
        scan(str(tmp_path / "notes.txt"))
    assert str(caught.value) == (f"{tmp_path / 'notes.txt'} is not an image file "
                                 "(png, jpg, jpeg, webp, gif, bmp, tif, tiff)")


def test_special_file_input(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(ScanError, match="pipe.png is not a file or folder"):
        scan(str(tmp_path / "pipe.png"))


def test_empty_folder_is_refused(tmp_path):
    with pytest.raises(ScanError) as caught:
        scan(str(tmp_path))
    assert str(caught.value) == f"no images in {tmp_path}"


def test_folder_without_images_says_how_many_files_were_skipped(tmp_path):
    touch(tmp_path, "a.txt", "b.json", ".hidden.png", "sub/c.png")
    with pytest.raises(ScanError) as caught:
        scan(str(tmp_path))
    assert str(caught.value) == f"no images in {tmp_path} (2 other files skipped)"


def test_scan_error_is_a_value_error():
    assert issubclass(ScanError, ValueError)


# -- scale ---------------------------------------------------------------------------------

def test_twenty_thousand_files(tmp_path):
    for index in range(20_000):  # os.open: a third of the cost of open() for empty files
        os.close(os.open(tmp_path / f"frame_{index}.png", os.O_CREAT | os.O_WRONLY, 0o644))
    touch(tmp_path, "sub/extra.png")
    result = scan(str(tmp_path), recursive=True)
    assert len(result.files) == 20_001
    assert result.files[:3] == [tmp_path / "frame_0.png", tmp_path / "frame_1.png", tmp_path / "frame_2.png"]
    assert result.files[-2:] == [tmp_path / "frame_19999.png", tmp_path / "sub" / "extra.png"]


# -- hostile trees: names that are not UTF-8, a scan without end -------------------------------------

def test_a_name_that_is_not_utf8_is_skipped_with_a_readable_name_and_a_reason(tmp_path):
    touch(tmp_path, "ok.png")
    root = os.fsencode(tmp_path)
    Path(os.fsdecode(root + b"/caf\xe9.png")).write_bytes(b"")
    os.makedirs(root + b"/d\xff/inner")
    Path(os.fsdecode(root + b"/d\xff/inner/x.png")).write_bytes(b"")
    result = scan(str(tmp_path), recursive=True)
    assert relative(result) == ["ok.png"]
    assert result.skipped == [("caf\\xe9.png", "name is not valid UTF-8: rename it to include it"),
                              ("d\\xff", "folder name is not valid UTF-8: rename it to include its images")]
    for name, reason in result.skipped:
        name.encode("utf-8")  # storable and sendable as it is


def test_an_input_path_that_is_not_text_is_refused(tmp_path):
    folder = os.fsdecode(os.fsencode(tmp_path) + b"/\xff")
    os.mkdir(folder)
    touch(Path(folder), "a.png")
    with pytest.raises(ScanError, match=r"input path is not valid text: .*/\\xff"):
        scan(folder)


def tree(root: Path, folders: int, files: int) -> Path:
    for number in range(folders):
        touch(root, *(f"f{number}/img{index}.png" for index in range(files)))
    return root


def test_a_scan_stops_at_the_entry_cap_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(console.scan._limits, "entries", 50)
    result = scan(str(tree(tmp_path, 10, 10)), recursive=True)
    assert len(result.files) < 50 and result.files == sorted(result.files, key=lambda p: natural_key(str(p)))
    assert result.cut == Cut("entries", 50, 50)
    assert "stopped after 50 entries (SCAN_MAX_ENTRIES=50)" in result.cut.message()
    assert scan(str(tmp_path / "f0")).cut is None  # 10 entries: under the cap


def test_a_scan_with_nothing_found_before_the_cap_says_why(tmp_path, monkeypatch):
    monkeypatch.setitem(console.scan._limits, "entries", 5)
    touch(tmp_path, *(f"a/n{index}.txt" for index in range(10)), "z/img.png")
    with pytest.raises(ScanError, match=r"no images in .*stopped after 5 entries"):
        scan(str(tmp_path), recursive=True)


def test_a_scan_stops_at_the_time_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(console.scan, "MAX_SECONDS", 0.0)
    monkeypatch.setattr(console.scan, "CHECK_EVERY", 7)
    result = scan(str(tree(tmp_path, 3, 10)), recursive=True)
    assert result.cut is not None and result.cut.reason == "time" and result.cut.visited == 7
    assert "stopped after 0 s" in result.cut.message()


def test_a_scan_nobody_waits_for_is_abandoned(tmp_path, monkeypatch):
    monkeypatch.setattr(console.scan, "CHECK_EVERY", 10)
    asked = []

    def gone() -> bool:
        asked.append(1)
        return True

    with pytest.raises(ScanError, match="cancelled"):
        scan(str(tree(tmp_path, 5, 10)), recursive=True, stop=gone)
    assert asked == [1]


def test_a_recursive_scan_of_the_file_system_root_ends_within_the_cap(monkeypatch):
    monkeypatch.setitem(console.scan._limits, "entries", 20_000)
    try:  # /proc and /sys included: loops, unreadable folders, devices
        said = scan("/", recursive=True).cut.message()
    except ScanError as exc:  # no image among the first 20,000 entries on this machine
        said = str(exc)
    assert "the scan stopped after 20000 entries (SCAN_MAX_ENTRIES=20000)" in said

