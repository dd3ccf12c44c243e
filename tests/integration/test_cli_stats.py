"""`python -m diagnostics stats` in a real subprocess: summary, JSON, --out, bad input."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from diagnostics.data.arrays import load_array_file
from diagnostics.stats.summary import dataset_stats

from conftest import run_cli, run_main

JSON_KEYS = {"n", "shape", "min", "max", "mean_range", "std_range", "snr_range",
             "constant_pixels", "nonfinite_values", "low_snr_rows", "findings"}


def _no_nan(token: str):
    raise AssertionError(f"JSON holds {token}: only finite numbers are allowed")


def strict_json(text: str) -> dict:
    """Parse JSON refusing NaN/Infinity (which Python's json would otherwise accept)."""
    return json.loads(text, parse_constant=_no_nan)


def assert_ok(out) -> None:
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr


def assert_one_line_error(out, match: str) -> None:
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert match in lines[0], lines[0]
    assert "Traceback" not in out.stderr and out.stdout == ""


@pytest.fixture
def degenerate_npy(tmp_path, spectro):
    """A .npy with 2 constant pixels, a constant row-free layout and 3 non-finite values."""
    X = spectro.copy()
    X[:, 0, 0] = 4.0
    X[:, 3, 5] = 0.0
    X[10, 2, 2], X[11, 2, 2], X[12, 7, 1] = np.nan, np.inf, -np.inf
    path = tmp_path / "deg.npy"
    np.save(path, X)
    return path


def test_summary_is_readable():
    out = run_cli("stats", "demo")
    assert_ok(out)
    text = out.stdout
    for part in ("demo (id demo): 840 train examples of 1,200, 60 x 130, 6 classes",
                 "pixel mean", "pixel std", "pixel SNR", "per-pixel z-scoring inflates noise",
                 "low-SNR rows (SNR < 0.2)", "findings:", "[warning] amplified_noise"):
        assert part in text, part
    assert "nan" not in text.lower()


def test_json_schema_on_demo():
    out = run_cli("stats", "demo", "--json", "--mask-snr", "0.2")
    assert_ok(out)
    info = strict_json(out.stdout)
    assert JSON_KEYS <= info.keys()
    assert info["n"] == 840 and info["shape"] == [60, 130]
    assert 0 <= info["min"] < info["max"]
    for key in ("mean_range", "std_range", "snr_range"):
        lo, hi = info[key]
        assert isinstance(lo, float) and 0 < lo <= hi, key
    assert info["constant_pixels"] == 0 and info["nonfinite_values"] == 0
    assert info["low_snr_rows"] and all(isinstance(r, int) and 0 <= r < 60
                                        for r in info["low_snr_rows"])
    assert {f["code"] for f in info["findings"]} >= {"skewed_values", "amplified_noise",
                                                     "low_snr_rows"}
    for f in info["findings"]:
        assert set(f) == {"code", "severity", "message"}
        assert f["severity"] in ("info", "warning", "error") and f["message"].endswith(".")


def test_json_numbers_match_the_engine(tmp_path, spectro, labels):
    np.save(tmp_path / "x.npy", spectro)
    np.save(tmp_path / "y.npy", labels)
    out = run_cli("stats", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"),
                  "--on", "all", "--json", "--mask-snr", "0.5")
    assert_ok(out)
    info = strict_json(out.stdout)
    st = dataset_stats(load_array_file(tmp_path / "x.npy", tmp_path / "y.npy"), on="all")
    assert info["n"] == 240 and info["classes"] == ["0", "1", "2", "3"]
    assert info["min"] == pytest.approx(float(spectro.min()))
    assert info["max"] == pytest.approx(float(spectro.max()))
    assert info["mean_range"] == pytest.approx([st.mean.min(), st.mean.max()])
    assert info["std_range"] == pytest.approx([st.std.min(), st.std.max()])
    assert info["snr_range"] == pytest.approx([st.snr.min(), st.snr.max()])
    assert info["low_snr_rows"] == np.flatnonzero(st.row_snr < 0.5).tolist()
    # The threshold moves the rows: 0 masks none (the same command line, in this process).
    none = strict_json(run_main("stats", str(tmp_path / "x.npy"), "--on", "all", "--json",
                               "--mask-snr", "0").stdout)
    assert none["low_snr_rows"] == []


def test_json_is_finite_with_degenerate_data(degenerate_npy):
    out = run_cli("stats", str(degenerate_npy), "--on", "all", "--json")
    assert_ok(out)
    info = strict_json(out.stdout)
    assert info["constant_pixels"] == 2 and info["nonfinite_values"] == 3
    codes = {f["code"]: f["severity"] for f in info["findings"]}
    assert codes["nonfinite_values"] == "error" and codes["constant_pixels"] == "warning"


def test_all_constant_data_json_and_summary(tmp_path):
    np.save(tmp_path / "c.npy", np.full((20, 3, 4), 1.5, np.float32))
    out = run_cli("stats", str(tmp_path / "c.npy"), "--json")
    assert_ok(out)
    info = strict_json(out.stdout)
    assert info["constant_pixels"] == 12 and info["snr_range"] == [None, None]
    assert {"code": "constant_pixels", "severity": "error"}.items() <= info["findings"][0].items()
    text = run_main("stats", str(tmp_path / "c.npy"))  # the summary, in this process
    assert_ok(text)
    assert "constant pixels 12" in text.stdout


def test_out_writes_the_maps(tmp_path, degenerate_npy):
    dest = tmp_path / "stats.npz"
    out = run_cli("stats", str(degenerate_npy), "--on", "all", "--out", str(dest))
    assert_ok(out)
    with np.load(dest, allow_pickle=False) as z:
        assert set(z.files) == {"mean", "std", "snr", "row_snr", "amplification"}
        maps = {k: z[k] for k in z.files}
    st = dataset_stats(load_array_file(degenerate_npy), on="all")
    for k, v in maps.items():
        assert v.dtype == np.float64
        np.testing.assert_array_equal(v, getattr(st, k), err_msg=k)
    assert maps["mean"].shape == (12, 17) and maps["row_snr"].shape == (12,)
    assert np.isnan(maps["snr"][0, 0]) and np.isnan(maps["snr"][3, 5])
    assert np.isnan(maps["amplification"][0, 0]) and maps["std"][0, 0] == 0
    assert np.isfinite(np.delete(maps["snr"].ravel(), [0, 3 * 17 + 5])).all()


def test_digits_builtin():
    info = strict_json(run_cli("stats", "digits", "--json", "--on", "all").stdout)
    assert info["n"] == 1797 and info["shape"] == [8, 8] and info["constant_pixels"] >= 1


def test_stats_demo_imports_neither_torch_nor_streamlit_nor_numba():
    out = run_cli("stats", "demo", "--json", python_flags=("-X", "importtime"))
    assert out.returncode == 0
    mods = {line.split("|")[-1].strip() for line in out.stderr.splitlines()
            if line.startswith("import time:") and line.count("|") == 2}
    assert "diagnostics.stats" in mods  # the import log is really there
    heavy = {m for m in mods if m.split(".")[0] in ("torch", "streamlit", "numba", "llvmlite")}
    assert heavy == set()


HEAVY = ("numba", "llvmlite", "scipy", "plotly", "sklearn", "librosa", "torch", "streamlit")


def test_stats_on_a_large_npy_imports_nothing_heavy(tmp_path, rng):
    """A 69 MB .npy (over the 64 MB from which the old engine took numba) is summarised with
    numpy alone: none of numba, scipy, plotly, sklearn, librosa, torch, streamlit is loaded."""
    path = tmp_path / "big.npy"
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(2_200, 60, 130))
    X[:300] = rng.standard_exponential((300, 60, 130), dtype=np.float32)  # the rest: zeros
    X.flush()
    del X
    out = run_cli("stats", str(path), "--on", "all", "--json", python_flags=("-X", "importtime"))
    assert_ok(out)
    assert strict_json(out.stdout)["n"] == 2_200
    mods = {line.split("|")[-1].strip() for line in out.stderr.splitlines()
            if line.startswith("import time:") and line.count("|") == 2}
    assert "diagnostics.stats" in mods  # the import log is really there
    assert sorted(m for m in mods if m.split(".")[0] in HEAVY) == []


# --- bad input: exit 2, one line, no traceback ------------------------------------------------

def _bad_inputs(tmp_path, spectro):
    """(argv, expected words) for every bad input the issue lists."""
    np.save(tmp_path / "x.npy", spectro)
    full = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "trunc.npy").write_bytes(full[: len(full) // 2])
    (tmp_path / "text.npy").write_text("not numpy")
    (tmp_path / "table.txt").write_text("a,b\n1,2\n")
    (tmp_path / "obj.npy").write_bytes(b"")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "pickle.npy").write_bytes(pickle.dumps({"X": [1, 2]}))
    np.save(tmp_path / "flat.npy", spectro[0])
    np.save(tmp_path / "y_short.npy", np.zeros(100, np.int64))
    np.save(tmp_path / "nan.npy", np.full((4, 2, 3), np.nan, np.float32))
    x = str(tmp_path / "x.npy")
    return [
        (["stats", str(tmp_path / "missing.npy")], "does not exist"),
        (["stats", str(tmp_path / "table.txt")], "table.txt"),
        (["stats", str(tmp_path / "text.npy")], "not a .npy array file"),
        (["stats", str(tmp_path / "trunc.npy")], "damaged or truncated"),
        (["stats", str(tmp_path / "obj.npy")], "refuses to unpickle"),
        (["stats", str(tmp_path / "pickle.npy")], "never unpickles"),
        (["stats", str(tmp_path / "flat.npy")], "(N, H, W)"),
        (["stats", x, "--labels", str(tmp_path / "y_short.npy")], "100 labels for 240 examples"),
        (["stats", str(tmp_path / "nan.npy"), "--on", "all"], "every value is NaN or infinite"),
        (["stats", x, "--out", str(tmp_path / "no" / "such" / "dir" / "s.npz")], "cannot write"),
        (["stats", x, "--mask-snr", "-1"], "must be a finite number >= 0"),
        (["stats", x, "--mask-snr", "nan"], "must be a finite number >= 0"),
        (["stats", x, "--on", "dev"], "invalid choice: 'dev'"),
        (["stats"], "required: data"),
    ]


def test_bad_input_exits_2_with_one_line(tmp_path, spectro):
    cases = _bad_inputs(tmp_path, spectro)
    for i, (argv, match) in enumerate(cases):
        # The first and the argparse refusal on the real command line (exit status, no
        # traceback); the others through the CLI's main in this process (the same checks).
        real = i == 0 or argv == ["stats"]
        assert_one_line_error((run_cli if real else run_main)(*argv), match)
