"""The streamed reading of an index file (ijson over the storage's descriptor): what it accepts, what it reports,
and that a hostile shape costs time and memory in proportion to its size, not more.
"""

import json
import time

import pytest

from indexing import recovery
from storages import drive


def read(folder, content: bytes, *, max_bytes=1_000_000):
    (folder / "index.json").write_bytes(content)
    with drive.Storage(folder) as store:
        return recovery.read_lazy_index(store, "index.json", max_bytes=max_bytes)


def test_small_members_are_loaded_and_the_big_one_is_walked_entry_by_entry(tmp_path):
    files = json.dumps({"a" * 32: {"path": "photos/x.jpg", "tags": ["a", {"b": None}]}, "b" * 32: 2})
    reading = read(
        tmp_path,
        b'{"import_session": {"id": 3, "lat": 59.9, "huge": %d, "far": 1e400}, "files": %s}' % (2**80, files.encode()),
    )
    assert reading.problem is None
    data = reading.data
    assert data["import_session"] == {
        "id": 3,
        "lat": 59.9,
        "huge": 2**80,
        "far": float("inf"),
    }  # as json.loads gives them
    assert type(data["import_session"]["lat"]) is float and "files" not in data.head
    assert list(data.members("files")) == [
        ("a" * 32, {"path": "photos/x.jpg", "tags": ["a", {"b": None}]}),
        ("b" * 32, 2),
    ]
    assert list(data.members("files")) == list(data.members("files")), "each walk reads the file again"
    assert list(data.members("import_sessions")) == []
    data.close()


def test_a_repeated_key_counts_by_its_last_occurrence_as_with_json_loads(tmp_path):
    data = read(tmp_path, b'{"files": {"a": 1}, "files": {"b": 2}}').data
    assert list(data.members("files")) == [("b", 2)]
    data.close()
    assert read(tmp_path, b'{"files": {"a": 1}, "files": 5}').data.head == {
        "files": None
    }  # of the wrong type: its check reports it


def test_a_utf8_byte_order_mark_is_skipped_and_utf16_is_reported(tmp_path):
    reading = read(
        tmp_path, b"\xef\xbb\xbf" + json.dumps({"storage_info": {}, "import_sessions": [{"index_file": "x"}]}).encode()
    )
    assert reading.problem is None and list(reading.data.members("import_sessions")) == [(None, {"index_file": "x"})]
    reading.data.close()
    problem = read(tmp_path, json.dumps({"storage_info": {}}).encode("utf-16")).problem
    assert problem.startswith("corrupt: not UTF-8 text")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "corrupt: "),
        (b"[]", "corrupt: the top level is not an object"),
        (b'{"a": 1} {"b": 2}', "corrupt: parse error: trailing garbage"),
        (b'{"a": 1', "corrupt: "),
        (b'{"a": "\xff"}', "corrupt: "),
        (b'{"a": "\xed\xa0\x80"}', "corrupt: "),
        (b'{"a": NaN}', "corrupt: "),
    ],
)
def test_what_is_not_one_json_object_is_corrupt(tmp_path, content, expected):
    reading = read(tmp_path, content)
    assert reading.data is None and reading.problem.startswith(expected), reading.problem
    assert "right here" not in reading.problem, "the excerpt of the file yajl quotes is left out"


def test_deep_nesting_is_reported_quickly(tmp_path):
    # ijson.parse/items would keep a prefix per level: memory quadratic in the depth.
    # basic_parse with a limit is linear.
    started = time.monotonic()
    assert read(tmp_path, b"[" * 1_000_000, max_bytes=10_000_000).problem == "corrupt: the top level is not an object"
    for content in (
        b'{"files": {"a": ' + b"[" * 1_000_000,
        b'{"import_sessions": [' + b"{}," * 10 + b"[" * 1_000_000,
        b'{"storage_info": ' + b'{"a": ' * 1_000_000,
    ):
        assert read(tmp_path, content, max_bytes=10_000_000).problem == "corrupt: nested too deeply"
    assert time.monotonic() - started < 10


def test_the_size_is_checked_before_a_byte_is_read_and_the_reading_is_bounded(tmp_path):
    assert read(tmp_path, b'{"a": 1}' + b" " * 100, max_bytes=50).problem.startswith("too large: 108 bytes")
    # A file that grows after its fstat: ijson is never let read past the limit.
    with (
        open(tmp_path / "index.json", "rb", buffering=0) as handle,
        pytest.raises(recovery.Corrupt, match="grew past the limit of 50 bytes"),
    ):
        recovery._scan(recovery._Bounded(handle, 50))


def test_a_file_changed_after_its_check_is_reported_by_the_walk_not_crashing_it(tmp_path):
    reading = read(tmp_path, b'{"files": {"a": 1, "b": 2}}')
    with open(tmp_path / "index.json", "r+b") as same_file:  # the same inode, rewritten in place
        same_file.write(b'{"files": {"a": 1, "b": ' + b"[" * 10_000)
    walk = reading.data.members("files")
    assert next(walk) == ("a", 1)
    with pytest.raises(ValueError, match="nested too deeply"):
        next(walk)
    reading.data.close()
