"""The dataset registry: content ids, memmap-able files, uploads, the data root, ids everywhere."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from audio_helpers import make_folder, npy_bytes, npz_bytes, wav_bytes, zip_bytes

from diagnostics import config

from diagnostics.data import store
from diagnostics.data.audio.features import FeatureParams
from diagnostics.data.ingest import load_dataset
from diagnostics.errors import NormScopeError
from diagnostics.data.store import content_id, list_datasets, open_dataset, register_arrays
from diagnostics.data.uploads import register_upload_npy_npz, register_upload_zip
from diagnostics.config import resolve_under_root


# Every test gets its own empty NORMSCOPE_HOME (the `home` fixture of conftest.py).
pytestmark = pytest.mark.usefixtures("home")




# --- register / open / list -------------------------------------------------------------------

def test_round_trip_is_a_read_only_float32_memmap(spectro, labels, home):
    X = spectro.astype(np.int16).astype(np.float64)  # int16 values stay exact in float32...
    ident = register_arrays(X.astype(np.int16), labels, ("a", "b", "c", "d"), "mine",
                            {"source": "test"})
    assert store.is_dataset_id(ident)
    ds = open_dataset(ident)
    # ...so they are stored as float32 (float64 sources stay float64: test_hardening.py).
    assert isinstance(ds.X, np.memmap) and ds.X.mode == "r" and ds.X.dtype == np.float32
    spectro = X.astype(np.float32)
    np.testing.assert_array_equal(ds.X, spectro)
    np.testing.assert_array_equal(ds.y, labels)
    assert (ds.name, ds.id, ds.class_names) == ("mine", ident, ("a", "b", "c", "d"))
    files = sorted(p.name for p in (home / "datasets" / ident).iterdir())
    assert files == ["X.npy", "meta.json", "y.npy"]  # plain files, no pickle anywhere
    assert np.load(home / "datasets" / ident / "X.npy", allow_pickle=False).shape == (240, 12, 17)
    rows = list_datasets()
    assert [r["id"] for r in rows] == [ident]
    assert rows[0]["n"] == 240 and rows[0]["shape"] == [12, 17] and rows[0]["classes"] == 4


def test_id_is_the_content(spectro, labels, home):
    a = register_arrays(spectro, labels, ("a", "b", "c", "d"), "one")
    meta_time = (home / "datasets" / a / "meta.json").stat().st_mtime_ns
    assert register_arrays(spectro.copy(), labels, ("a", "b", "c", "d"), "other name") == a
    assert (home / "datasets" / a / "meta.json").stat().st_mtime_ns == meta_time  # not rewritten
    assert open_dataset(a).name == "one"
    y2 = labels.copy()
    y2[0] = (y2[0] + 1) % 4
    X2 = spectro.copy()
    X2[5, 3, 3] += 1
    others = {
        register_arrays(X2, labels, ("a", "b", "c", "d"), "x"),
        register_arrays(spectro, y2, ("a", "b", "c", "d"), "x"),
        register_arrays(spectro, labels, ("a", "b", "c", "e"), "x"),
        register_arrays(spectro, None, (), "x"),
        register_arrays(spectro, labels, ("a", "b", "c", "d"), "x",
                        {"feature_params": FeatureParams().key()}),
    }
    assert a not in others and len(others) == 5


def test_id_is_stable_across_versions():
    # Links carry ids: a change of the hashed content must be deliberate (bump FORMAT_VERSION).
    X = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    assert content_id(X, np.array([0, 1]), ("a", "b")) == "1f8592cffeb7"


def test_large_memmap_is_copied_in_chunks(tmp_path, spectro, monkeypatch):
    src = tmp_path / "big.npy"
    np.save(src, spectro.astype(np.float64))
    X = np.load(src, mmap_mode="r")
    with monkeypatch.context() as m:
        m.setattr(store, "CHUNK_BYTES", 1000)  # many chunks of a few rows
        ident = register_arrays(X, None, (), "big")
    np.testing.assert_array_equal(open_dataset(ident).X, spectro.astype(np.float64))
    assert open_dataset(ident).X.dtype == np.float64  # a float64 source stays float64
    assert ident == content_id(spectro.astype(np.float64), None, ())
    assert ident != content_id(spectro, None, ())


def test_string_labels_are_encoded_and_4d_arrays_squeezed(spectro):
    y = np.array(["dog", "cat"] * 120)
    ident = register_arrays(spectro[:, None], y, (), "strings")
    ds = open_dataset(ident)
    assert ds.class_names == ("cat", "dog") and ds.X.shape == (240, 12, 17)
    assert list(ds.y[:2]) == [1, 0]


def test_home_is_read_at_call_time(tmp_path, spectro, monkeypatch):
    ident = register_arrays(spectro, None, (), "a")
    monkeypatch.setenv("NORMSCOPE_HOME", str(tmp_path / "elsewhere"))
    assert list_datasets() == []
    with pytest.raises(NormScopeError, match="no dataset with id"):
        open_dataset(ident)


def test_damaged_entries_are_not_listed_and_do_not_open(spectro, home):
    ident = register_arrays(spectro, None, (), "a")
    (home / "datasets" / "0123456789ab").mkdir()  # incomplete: no meta.json
    (home / "datasets" / ".tmp-zz").mkdir()
    assert [r["id"] for r in list_datasets()] == [ident]
    (home / "datasets" / ident / "X.npy").write_bytes(b"garbage")
    with pytest.raises(NormScopeError, match=f"dataset {ident} .* is damaged"):
        open_dataset(ident)


# --- uploads ------------------------------------------------------------------------------------

def test_upload_npy_with_labels_and_npz(spectro, labels):
    a = register_upload_npy_npz("C:\\Users\\me\\feat.npy", npy_bytes(spectro), npy_bytes(labels))
    ds = open_dataset(a)
    assert ds.name == "feat.npy" and ds.n == 240 and len(ds.class_names) == 4
    assert store.dataset_meta(a)["source"] == "upload feat.npy"
    b = register_upload_npy_npz("both.npz", npz_bytes(X=spectro, y=labels))
    assert b == a  # same arrays, same id
    c = register_upload_npy_npz("nolabels.npy", npy_bytes(spectro))
    assert open_dataset(c).y is None and c != a


def test_upload_zip_of_class_folders(tmp_path, rng):
    entries = {}
    for cls, f in (("dog", 440.0), ("cat", 990.0)):
        for i in range(3):
            entries[f"mydata/{cls}/{i}.wav"] = wav_bytes(f * (1 + 0.05 * i), rng=rng)
    entries["mydata/readme.txt"] = b"hello"
    entries["__MACOSX/mydata/dog/._0.wav"] = b"resource fork"
    entries["mydata/dog/.DS_Store"] = b"junk"
    data = zip_bytes(entries)
    calls = []
    ident = register_upload_zip("mydata.zip", data, FeatureParams(feature="logmel"),
                                lambda d, t: calls.append((d, t)))
    ds = open_dataset(ident)
    assert ds.name == "mydata" and ds.n == 6 and ds.class_names == ("cat", "dog")
    meta = store.dataset_meta(ident)
    assert meta["feature_params"]["feature"] == "logmel" and meta["skipped"] == []
    assert calls[-1] == (6, 6)
    assert not list((config.home() / "tmp").iterdir())  # the unpacked copy is gone
    calls.clear()
    assert register_upload_zip("again.zip", data, FeatureParams(feature="logmel"),
                               lambda d, t: calls.append(d)) == ident
    assert calls == []  # cached by the archive's hash: not even unpacked
    # The same clips from a folder on disk give the same content id.
    folder = tmp_path / "unzipped"
    for name, blob in entries.items():
        if name.startswith("mydata/") and name.endswith(".wav"):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(blob)
    assert load_dataset(str(folder / "mydata"), params=FeatureParams(feature="logmel")).id == ident


# --- data root ----------------------------------------------------------------------------------

def test_resolve_under_root(tmp_path, monkeypatch):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    os.symlink(tmp_path / "secret", root / "link")
    assert resolve_under_root("sub", root=root) == (root / "sub").resolve()
    assert resolve_under_root(str(root / "sub"), root=root) == (root / "sub").resolve()
    for bad in ("../secret", str(tmp_path / "secret"), "link", "sub/../../secret", "/etc/passwd"):
        with pytest.raises(NormScopeError, match="outside the data root"):
            resolve_under_root(bad, root=root)
    with pytest.raises(NormScopeError, match="empty"):
        resolve_under_root("  ", root=root)
    monkeypatch.setenv("NORMSCOPE_DATA_ROOT", str(root))
    assert resolve_under_root("sub") == (root / "sub").resolve()
    with pytest.raises(NormScopeError, match="outside the data root"):
        resolve_under_root("../secret")


def test_load_dataset_confined_to_root(tmp_path, rng):
    root = tmp_path / "root"
    make_folder(root / "clips", rng, per_class=2)
    make_folder(tmp_path / "outside", rng, per_class=2)
    ds = load_dataset("clips", root=root, workers=1)
    assert ds.n == 4
    with pytest.raises(NormScopeError, match="outside the data root"):
        load_dataset(str(tmp_path / "outside"), root=root)
    np.save(tmp_path / "x.npy", np.ones((3, 4, 5), np.float32))
    np.save(root / "x.npy", np.ones((3, 4, 5), np.float32))
    with pytest.raises(NormScopeError, match="outside the data root"):
        load_dataset("x.npy", labels="../x.npy", root=root)
    # A manifest under the root may not reach out of it: such clips are skipped unread.
    (root / "list.csv").write_text("clips/dog/00.wav,dog\n../outside/cat/00.wav,cat\n")
    ds = load_dataset("list.csv", root=root, workers=1)
    assert ds.n == 1
    assert store.dataset_meta(ds.id)["skipped"] == [["../outside/cat/00.wav",
                                                        "lies outside the data root"]]


def test_load_dataset_accepts_ids_folders_manifests_and_files(tmp_path, rng, spectro):
    folder = make_folder(tmp_path / "clips", rng, per_class=2)
    ds = load_dataset(str(folder), workers=1)
    assert load_dataset(ds.id).id == ds.id
    (tmp_path / "m.csv").write_text("clips/cat/00.wav,cat\nclips/dog/00.wav,dog\n")
    assert load_dataset(str(tmp_path / "m.csv")).n == 2
    np.save(tmp_path / "a.npy", spectro)
    assert load_dataset(str(tmp_path / "a.npy")).n == 240
    assert load_dataset("demo").id == "demo"
    with pytest.raises(NormScopeError, match="no dataset with id 0123456789ab"):
        load_dataset("0123456789ab")


# --- command line -------------------------------------------------------------------------------

def test_cli_datasets_lists_registered_ones(cli, cli_main, home, spectro, tmp_path, rng):
    env = {"NORMSCOPE_HOME": str(home)}
    r = cli("datasets", env=env)
    assert r.returncode == 0 and "no registered datasets" in r.stdout
    ident = register_arrays(spectro, None, (), "listed")
    folder = make_folder(tmp_path / "clips", rng, per_class=2)
    (folder / "dog" / "bad.wav").write_bytes(b"RIFF....")
    r = cli("stats", str(folder), "--feature", "logmel", "--n-mels", "40", "--on", "all",
            "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # no progress line when stderr is not a terminal
    info = json.loads(r.stdout)
    assert info["shape"] == [40, 130] and info["n_total"] == 4
    assert info["skipped"] == [{"file": "dog/bad.wav",
                                "reason": "not readable as audio: Format not recognised."}]
    r = cli_main("datasets", "--json", env=env)  # the listings in this process
    rows = json.loads(r.stdout)
    assert {row["id"] for row in rows} == {ident, info["id"]}
    text = cli_main("datasets", env=env).stdout
    assert ident in text and "listed" in text and "logmel" in text
    r = cli_main("stats", info["id"], env=env)  # a teammate opens it by id (in this process)
    assert r.returncode == 0 and f"(id {info['id']})" in r.stdout
    assert "skipped clips (1):\n  dog/bad.wav: not readable as audio" in r.stdout


def test_cli_datasets_delete_removes_only_the_named_ones(cli, home, spectro):
    env = {"NORMSCOPE_HOME": str(home)}
    a = register_arrays(spectro, None, (), "a")
    b = register_arrays(spectro[:10], None, (), "b")
    X = open_dataset(a).X  # an open memmap keeps working after the delete
    r = cli("datasets", "--delete", a, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"deleted {a} (") and "MB)" in r.stdout
    assert [row["id"] for row in list_datasets()] == [b]
    assert not any(p.name.startswith(".trash") for p in (home / "datasets").iterdir())
    np.testing.assert_array_equal(X, spectro)
    with pytest.raises(NormScopeError, match=f"no dataset with id {a}"):
        open_dataset(a)
    # Registering the same content again gives the same id back.
    assert register_arrays(spectro, None, (), "a") == a


@pytest.mark.parametrize("bad, match", [
    ("0123456789ab", "no dataset with id 0123456789ab"),
    ("../etc", "is not a dataset id"),
])
def test_cli_datasets_delete_refuses_unknown_ids_and_removes_nothing(cli, home, spectro, bad,
                                                                     match):
    env = {"NORMSCOPE_HOME": str(home)}
    a = register_arrays(spectro, None, (), "a")
    r = cli("datasets", "--delete", a, bad, env=env)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("error: ") and match in r.stderr and "Traceback" not in r.stderr
    assert [row["id"] for row in list_datasets()] == [a]
