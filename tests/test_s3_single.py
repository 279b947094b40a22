"""`efsfast restore s3://…/NAME.efsraw DEST`: one object of a bucket as the
source.  A missing object (or bucket) is a missing source, refused before
any work as a missing file is (exit 2), the URL named, nothing at DEST."""
import json

import pytest

import efsfast
from efsfast import cli
from efsfast.store import open_store

from conftest import listing


def _put(url, name, data):
    with open_store(url) as store:
        store.write(name, data)


def test_present_object_restores(xattr_dir, s3_url, capsys):
    """The control: the same kind of URL with the object there restores."""
    raw = efsfast.synthetic_raw(5000, seed=3)
    _put(s3_url, "f.efsraw", raw)
    assert cli.main(["restore", f"{s3_url}/f.efsraw", str(xattr_dir / "back")]) == 0
    assert efsfast.backup(xattr_dir / "back") == raw


@pytest.mark.parametrize("as_json", [False, True])
def test_missing_object_is_refused_before_work(xattr_dir, s3_url, capsys, as_json):
    _put(s3_url, "other.efsraw", efsfast.synthetic_raw(100, seed=4))   # the prefix is there
    url = f"{s3_url}/missing.efsraw"
    dest = xattr_dir / "out"
    before = listing(xattr_dir)
    argv = ["restore", url, str(dest)] + (["--json"] if as_json else [])
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    if as_json:
        rec = json.loads(out)
        assert rec["exit_code"] == 2 and not rec["ok"]
        assert [(f["path"], f["kind"]) for f in rec["failures"]] == [(url, "not_found")]
        assert "no such object" in rec["failures"][0]["error"]
    else:
        assert f"{url}: no such object" in err, err
        assert "Traceback" not in err
    assert not dest.exists() and listing(xattr_dir) == before      # nothing written


def test_missing_object_into_a_folder_leaves_it_as_it_was(xattr_dir, s3_url, capsys):
    dest = xattr_dir / "folder"
    dest.mkdir()
    assert cli.main(["restore", f"{s3_url}/none.efsraw", str(dest), "--directory"]) == 2
    assert "no such object" in capsys.readouterr().err
    assert listing(dest) == []


def test_missing_bucket_is_refused_too(xattr_dir, s3_url, capsys):
    url = "s3://efsfast-no-such-bucket-here/x/f.efsraw"
    assert cli.main(["restore", url, str(xattr_dir / "out")]) == 2
    err = capsys.readouterr().err
    assert url in err or "efsfast-no-such-bucket-here" in err, err
    assert not (xattr_dir / "out").exists()
