"""Unpacking an uploaded dataset .zip: what is kept, what is skipped, and what is refused."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from translator.app.archives import Unpacked, dataset_name, unpack_zip
from translator.errors import TranslatorError

PNG = b"\x89PNG\r\n\x1a\n fake image"


def make_zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]], method=zipfile.ZIP_STORED) -> Path:
    """A zip holding ``members`` in order; a name ending in / is a folder entry."""
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its content."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def refused(tmp_path: Path, archive: Path, root: Path, **kwargs) -> str:
    """Unpacking must fail with a one-line message and leave no trace anywhere under tmp_path."""
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(TranslatorError) as caught:
        unpack_zip(archive, root, **kwargs)
    message = str(caught.value)
    assert message and "\n" not in message and "\r" not in message
    # raised without a chained traceback for the user to wade through
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__
    assert sorted(tmp_path.rglob("*")) == before  # no dataset, no staging folder, no stray file
    return message


def patch_single_member(path: Path, *, flag_bits: int | None = None, file_size: int | None = None) -> None:
    """Rewrite fields of the only member of a zip in both its local header and the central directory."""
    data = bytearray(path.read_bytes())
    local, central = 0, data.rindex(b"PK\x01\x02")
    assert data[local : local + 4] == b"PK\x03\x04"
    if flag_bits is not None:
        struct.pack_into("<H", data, local + 6, flag_bits)
        struct.pack_into("<H", data, central + 8, flag_bits)
    if file_size is not None:
        struct.pack_into("<I", data, local + 22, file_size)
        struct.pack_into("<I", data, central + 24, file_size)
    path.write_bytes(bytes(data))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "datasets"
    folder.mkdir()
    return folder


def test_nested_dataset_keeps_layout_and_reports_skipped_files(tmp_path, root):
    archive = make_zip(
        tmp_path / "horses.zip",
        [
            ("trainA/", b""),
            ("trainA/1.png", PNG + b"1"),
            ("trainA/2.JPG", PNG + b"2"),
            ("trainA/.hidden.png", PNG),
            ("trainB/1.webp", PNG + b"3"),
            ("val/A/x.jpeg", PNG + b"4"),
            ("empty/", b""),
            ("notes.txt", b"hello"),
            (".DS_Store", b"junk"),
            (".git/config", b"junk"),
            ("__MACOSX/trainA/._1.png", b"fork"),
            ("./trainB/2.png", PNG + b"5"),
        ],
    )
    result = unpack_zip(archive, root)

    assert result.folder == root / "horses"
    assert result.images == 5
    assert tree(root / "horses") == {
        "trainA/1.png": PNG + b"1",
        "trainA/2.JPG": PNG + b"2",
        "trainB/1.webp": PNG + b"3",
        "trainB/2.png": PNG + b"5",
        "val/A/x.jpeg": PNG + b"4",
    }
    assert result.skipped == ["trainA/.hidden.png", "notes.txt", ".DS_Store", ".git/config", "__MACOSX/trainA/._1.png"]
    assert not (root / "horses" / "empty").exists()  # folders come only with the files in them
    assert [p.name for p in root.iterdir()] == ["horses"]  # the staging folder is gone
    assert result.summary() == (
        "horses: 5 images (5 other files skipped: notes.txt, trainA/.hidden.png, .DS_Store, "
        ".git/config, __MACOSX/trainA/._1.png)"
    )


def test_dataset_folder_gets_ordinary_permissions(tmp_path, root):
    # the staging folder is private; the dataset must not inherit that
    result = unpack_zip(make_zip(tmp_path / "a.zip", [("a.png", PNG)]), root)
    probe = tmp_path / "probe"
    probe.mkdir()
    assert stat.S_IMODE(result.folder.stat().st_mode) == stat.S_IMODE(probe.stat().st_mode)


def test_single_top_level_folder_is_stripped(tmp_path, root):
    archive = make_zip(
        tmp_path / "horses.zip",
        [
            ("horses/", b""),
            ("horses/trainA/a.png", PNG),
            ("horses/trainB/b.png", PNG),
            ("horses/README.txt", b"about"),
            ("__MACOSX/horses/trainA/._a.png", b"fork"),
        ],
    )
    result = unpack_zip(archive, root)
    assert set(tree(result.folder)) == {"trainA/a.png", "trainB/b.png"}
    assert result.skipped == ["horses/README.txt", "__MACOSX/horses/trainA/._a.png"]


@pytest.mark.parametrize(
    "members, expected",
    [
        ([("photos/a.png", PNG), ("photos/b.png", PNG)], {"a.png", "b.png"}),
        ([("photos/a.png", PNG), ("b.png", PNG)], {"photos/a.png", "b.png"}),
        ([("a/x.png", PNG), ("b/y.png", PNG)], {"a/x.png", "b/y.png"}),
        ([("a.png", PNG)], {"a.png"}),
    ],
)
def test_only_a_folder_holding_everything_is_stripped(tmp_path, root, members, expected):
    result = unpack_zip(make_zip(tmp_path / "set.zip", members), root)
    assert set(tree(result.folder)) == expected


def test_root_is_created_when_missing(tmp_path):
    root = tmp_path / "new" / "datasets"
    result = unpack_zip(make_zip(tmp_path / "a.zip", [("a.png", PNG)]), root)
    assert tree(root) == {"a/a.png": PNG}
    assert result.images == 1


@pytest.mark.parametrize(
    "evil",
    [
        "../evil.png",
        "trainA/../../evil.png",
        "trainA/../../../evil.png",
        "C:/evil.png",
        "c:evil.png",
        "..\\evil.png",
        "trainA\\evil.png",
        "../evil\nname.png",
    ],
)
def test_paths_leading_out_of_the_folder_are_refused(tmp_path, root, evil):
    archive = make_zip(tmp_path / "horses.zip", [("trainA/ok.png", PNG), (evil, PNG)])
    assert evil in zipfile.ZipFile(archive).namelist()  # zipfile kept the name as written
    message = refused(tmp_path, archive, root)
    assert "horses.zip" in message and "refusing" in message
    assert not list(tmp_path.rglob("evil*"))


def test_absolute_paths_are_refused(tmp_path, root):
    target = tmp_path / "evil.png"
    for absolute in ["/etc/x.png", str(target)]:
        archive = make_zip(tmp_path / "horses.zip", [("ok.png", PNG), (absolute, PNG)])
        assert "absolute path" in refused(tmp_path, archive, root)
        assert not target.exists()
        assert not Path("/etc/x.png").exists()


def test_hostile_names_are_refused_even_where_they_would_be_skipped(tmp_path, root):
    archive = make_zip(tmp_path / "horses.zip", [("ok.png", PNG), ("__MACOSX/../../notes.txt", b"x")])
    assert "leading out" in refused(tmp_path, archive, root)


def test_symlink_member_is_refused(tmp_path, root):
    link = zipfile.ZipInfo("trainA/link.png")
    link.create_system = 3  # Unix, where the mode bits mean something
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = make_zip(tmp_path / "horses.zip", [("trainA/a.png", PNG), (link, b"/etc/passwd")])
    assert "symbolic link" in refused(tmp_path, archive, root)


def test_encrypted_member_is_refused(tmp_path, root):
    archive = make_zip(tmp_path / "horses.zip", [("a.png", PNG)])
    patch_single_member(archive, flag_bits=0x1)
    assert zipfile.ZipFile(archive).infolist()[0].flag_bits & 0x1
    assert "password" in refused(tmp_path, archive, root)


def test_zip_bomb_lying_about_its_size_is_refused(tmp_path, root):
    archive = make_zip(tmp_path / "bomb.zip", [("bomb.png", bytes(4 * 1024**2))], method=zipfile.ZIP_DEFLATED)
    assert archive.stat().st_size < 64 * 1024
    patch_single_member(archive, file_size=100)
    assert zipfile.ZipFile(archive).infolist()[0].file_size == 100  # passes the up-front check
    message = refused(tmp_path, archive, root, max_bytes=1024)
    # zipfile stops at the declared size and the CRC then fails; a reader that went on would
    # be stopped by the byte count
    assert message == "bomb.zip is damaged: bomb.png cannot be read" or "more than the 1 KB" in message


def test_bytes_really_written_are_counted(tmp_path, root, monkeypatch):
    # a reader that hands over more than declared, as zipfile itself never does: the count
    # while streaming must stop it, not the declared sizes
    archive = make_zip(tmp_path / "horses.zip", [("a.png", PNG), ("b.png", PNG)])
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, member, *a, **k: io.BytesIO(bytes(600)))
    message = refused(tmp_path, archive, root, max_bytes=1024)
    assert "more than the 1 KB allowed" in message and "TRANSLATOR_MAX_ZIP_BYTES" in message


def test_declared_sizes_are_checked_before_anything_is_read(tmp_path, root, monkeypatch):
    archive = make_zip(tmp_path / "horses.zip", [("a.png", bytes(600)), ("b.png", bytes(600))])

    def never(*args, **kwargs):
        raise AssertionError("a member was read")

    monkeypatch.setattr(zipfile.ZipFile, "open", never)
    message = refused(tmp_path, archive, root, max_bytes=1024)
    assert "more than the 1 KB allowed" in message


def test_only_the_files_kept_count_towards_the_size_limit(tmp_path, root):
    archive = make_zip(tmp_path / "horses.zip", [("a.png", bytes(600)), ("video.mp4", bytes(5000))])
    result = unpack_zip(archive, root, max_bytes=1024)
    assert result.images == 1 and result.skipped == ["video.mp4"]


def test_too_many_members_are_refused(tmp_path, root):
    # every member counts, folders and skipped files included
    members = [("a/", b""), ("a/1.png", PNG), ("notes.txt", b""), ("a/2.png", PNG)]
    archive = make_zip(tmp_path / "horses.zip", members)
    message = refused(tmp_path, archive, root, max_files=3)
    assert "4 entries" in message and "TRANSLATOR_MAX_ZIP_FILES" in message
    assert unpack_zip(archive, root, max_files=4).images == 2


def test_limits_are_read_from_the_environment_at_call_time(tmp_path, root, monkeypatch):
    archive = make_zip(tmp_path / "horses.zip", [("a.png", bytes(600)), ("b.png", bytes(600))])
    monkeypatch.setenv("TRANSLATOR_MAX_ZIP_FILES", "1")
    assert "more than the 1 allowed" in refused(tmp_path, archive, root)
    monkeypatch.setenv("TRANSLATOR_MAX_ZIP_FILES", "lots")
    assert "TRANSLATOR_MAX_ZIP_FILES must be a positive whole number" in refused(tmp_path, archive, root)
    monkeypatch.delenv("TRANSLATOR_MAX_ZIP_FILES")
    monkeypatch.setenv("TRANSLATOR_MAX_ZIP_BYTES", "1024")
    assert "more than the 1 KB allowed" in refused(tmp_path, archive, root)
    # an explicit argument wins over the environment
    assert unpack_zip(archive, root, max_bytes=2000).images == 2


@pytest.mark.parametrize("content", [b"", b"this is not a zip file", b"PK\x05\x06" + bytes(10)])
def test_not_a_zip_is_refused(tmp_path, root, content):
    archive = tmp_path / "horses.zip"
    archive.write_bytes(content)
    assert "not a zip file" in refused(tmp_path, archive, root)


def test_truncated_zip_is_refused(tmp_path, root):
    archive = make_zip(tmp_path / "horses.zip", [("a.png", PNG * 100), ("b.png", PNG)])
    archive.write_bytes(archive.read_bytes()[:-30])
    assert "not a zip file" in refused(tmp_path, archive, root)


def test_bad_crc_is_refused(tmp_path, root):
    archive = make_zip(tmp_path / "horses.zip", [("a.png", PNG), ("b.png", b"original data")])
    archive.write_bytes(archive.read_bytes().replace(b"original data", b"modified data"))
    assert refused(tmp_path, archive, root) == "horses.zip is damaged: b.png cannot be read"


def test_missing_archive_is_refused(tmp_path, root):
    assert refused(tmp_path, tmp_path / "nowhere.zip", root) == "archive not found: nowhere.zip"


def test_existing_dataset_is_never_overwritten_or_merged(tmp_path, root):
    (root / "horses").mkdir()
    (root / "horses" / "mine.png").write_bytes(b"keep me")
    archive = make_zip(tmp_path / "horses.zip", [("mine.png", PNG), ("other.png", PNG)])
    message = refused(tmp_path, archive, root)
    assert message == "a dataset called horses already exists; choose another name"
    assert tree(root) == {"horses/mine.png": b"keep me"}
    # an empty folder or a file of that name is taken too
    (root / "empty").mkdir()
    (root / "file").write_bytes(b"")
    assert "already exists" in refused(tmp_path, archive, root, name="empty")
    assert "already exists" in refused(tmp_path, archive, root, name="file")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("horses", "horses"),
        ("horse2zebra-v1.0_small", "horse2zebra-v1.0_small"),
        ("my horses (2)", "my_horses_2"),
        ("chevaux été", "chevaux_ete"),
        (".hidden", "hidden"),
        ("../../escape", "escape"),
        ("a/b\\c", "a_b_c"),
        ("-rf", "rf"),
        ("x" * 300, "x" * 100),
    ],
)
def test_dataset_names_are_sanitised(text, expected):
    assert dataset_name(text) == expected


@pytest.mark.parametrize("text", ["", "...", "???", " ", "日本", "._-"])
def test_unusable_dataset_names_are_refused(tmp_path, root, text):
    with pytest.raises(TranslatorError, match="cannot be used as a dataset name"):
        dataset_name(text)
    archive = make_zip(tmp_path / "horses.zip", [("a.png", PNG)])
    refused(tmp_path, archive, root, name=text)


def test_archive_name_becomes_a_safe_folder_name(tmp_path, root):
    result = unpack_zip(make_zip(tmp_path / "my horses (2).zip", [("a.png", PNG)]), root)
    assert result.folder == root / "my_horses_2"
    result = unpack_zip(make_zip(tmp_path / "b.zip", [("a.png", PNG)]), root, name="../../escape")
    assert result.folder == root / "escape"
    assert sorted(p.name for p in root.iterdir()) == ["escape", "my_horses_2"]


def test_zip_without_images_is_refused(tmp_path, root):
    archive = make_zip(
        tmp_path / "horses.zip",
        [("docs/", b""), ("notes.txt", b"x"), (".hidden/a.png", PNG), ("__MACOSX/._a.png", b"fork")],
    )
    message = refused(tmp_path, archive, root)
    assert message.startswith("horses.zip contains no images (looked for .png, .jpg")


def test_members_that_would_collide_are_refused(tmp_path, root):
    with pytest.warns(UserWarning, match="Duplicate name"):
        twice = make_zip(tmp_path / "twice.zip", [("a.png", PNG), ("a.png", PNG + b"!")])
    assert "twice" in refused(tmp_path, twice, root)
    # after the shared top folder is stripped, "x/a.png" and "./x/a.png" are one file
    same = make_zip(tmp_path / "same.zip", [("x/a.png", PNG), ("./x/a.png", PNG)])
    assert "twice" in refused(tmp_path, same, root)
    clash = make_zip(tmp_path / "clash.zip", [("a.png", PNG), ("a.png/b.png", PNG)])
    assert "both a file and a folder" in refused(tmp_path, clash, root)


def test_summary_is_one_short_line():
    folder = Path("/data/horses")
    assert Unpacked(folder, 1, []).summary() == "horses: 1 image"
    assert Unpacked(folder, 3, ["notes.txt"]).summary() == "horses: 3 images (1 other file skipped: notes.txt)"
    skipped = ["__MACOSX/._a.png"] + [f"note{i}.txt" for i in range(7)] + ["odd\nname.txt"]
    line = Unpacked(folder, 120, skipped).summary()
    assert line == "horses: 120 images (9 other files skipped: note0.txt, note1.txt, note2.txt, note3.txt, note4.txt, ...)"
    assert "\n" not in Unpacked(folder, 2, ["odd\nname.txt"]).summary()
