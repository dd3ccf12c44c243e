"""Export of a fitted normalization: normalizer.npz (round trip, no pickle), the torch module
loaded in a clean interpreter without the project (same numbers as Normalizer.transform within
1e-5 on held-out data), USAGE.md's snippet, the in-memory zip, the CLI's options and refusals."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from diagnostics import export as spec
from diagnostics.data.dataset import Dataset, split_indices
from diagnostics.errors import NormScopeError
from diagnostics.normalize import Normalizer

CONFIGS = ["db+per_row@mask", "pcen+per_row", "instance_row", "shrink", "log1p+global",
           "pcen:t=0.06:gain=0.8+instance@mask", "none"]


@pytest.fixture
def data(rng, tmp_path):
    """A (240, 12, 40) power-like dataset with labels and a few low-SNR rows, as an .npz."""
    n, h, w = 240, 12, 40
    y = np.repeat(np.arange(4), 60)
    level = np.geomspace(400.0, 0.5, 9)[:, None]
    X = np.empty((n, h, w))
    X[:, :9] = rng.exponential(1.0, (n, 9, w)) * level * (1 + y[:, None, None] % 2)
    # Faint rare clicks: row SNR about sqrt(0.02 / 2) = 0.1, under the mask's 0.2.
    X[:, 9:] = 0.002 * rng.exponential(1.0, (n, 3, w)) * (rng.random((n, 3, w)) < 0.02)
    X = X.astype(np.float32)
    path = tmp_path / "power.npz"
    np.savez(path, X=X, y=y)
    return path, X, y


def _clean_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in ``python -I`` from ``cwd`` with no PYTHONPATH: the project is unreachable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run([sys.executable, "-I", "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


@pytest.mark.slow
def test_exported_module_in_a_clean_interpreter_equals_transform(cli, cli_main, home, data,
                                                                  tmp_path):
    from models.export import write_export

    path, X, y = data
    split = split_indices(len(y), y)
    held = X[split.test]
    ds = Dataset(X=X, y=y, class_names=tuple("abcd"), name="power", id="p0")
    outs = []
    for i, cfg in enumerate(CONFIGS):
        out = tmp_path / f"exp{i}"
        if i < 3:  # the command line for the three; the same function for the rest
            # One real process (exit status, imports); the CLI's main in this process after it.
            run = cli if i == 0 else cli_main
            r = run("export", str(path), "--config", cfg, "--out", str(out), "--fit-on", "train")
            assert r.returncode == 0, r.stderr
            assert "fitted on the training part of the 70/15/15 holdout split" in r.stdout
        else:
            norm, meta = spec.fit_for_export(ds, cfg, plan=spec.FitPlan("train"))
            write_export(out, spec.normalizer_arrays(norm, meta))
        assert sorted(p.name for p in out.iterdir()) == ["USAGE.md", "normalizer.npz",
                                                         "normalizer.pt2"]
        ref = Normalizer(cfg).fit(X, indices=split.train).transform(held)
        np.save(out / "ref.npy", ref)
        outs.append(str(out))
        if cfg == "db+per_row@mask":
            assert ref.shape[1] < X.shape[1]  # masked rows are dropped, not zeroed
    errs = _agrees_in_a_clean_interpreter(tmp_path, outs, held, PT2)
    assert len(errs) == len(CONFIGS)
    for cfg, (err, one) in zip(CONFIGS, errs):
        assert err <= 1e-5 and one <= 1e-5, (cfg, err, one)


@pytest.mark.slow
def test_usage_snippet_runs_without_the_project(home, data, tmp_path):
    from models.export import write_export

    _, X, y = data
    ds = Dataset(X=X, y=y, class_names=tuple("abcd"), name="power", id="p0")
    norm, meta = spec.fit_for_export(ds, "pcen+per_row@mask")
    write_export(tmp_path / "out", spec.normalizer_arrays(norm, meta))
    text = (tmp_path / "out" / "USAGE.md").read_text()
    assert "fitted" in text and "dropped" in text or "No row is masked" in text
    snippet = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    p = _clean_python(snippet, tmp_path / "out")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "pcen+per_row@mask fitted on all 240 examples" in p.stdout


def test_npz_round_trip_without_pickle(data, tmp_path):
    _, X, y = data
    ds = Dataset(X=X, y=y, class_names=tuple("abcd"), name="power", id="p0")
    for cfg in ("db+per_row@mask", "pcen:t=0.06+shrink:w=0.25", "instance", "robust@mask"):
        norm, meta = spec.fit_for_export(ds, cfg, plan=spec.FitPlan("train"))
        arrays = spec.normalizer_arrays(norm, meta)
        assert all(np.asarray(v).dtype != object for v in arrays.values())
        buf = io.BytesIO()
        spec.save_npz(buf, arrays)
        buf.seek(0)
        with np.load(buf, allow_pickle=False) as f:  # plain arrays only
            assert str(f["config"]) == norm.config_.name and str(f["dataset_id"]) == "p0"
            assert str(f["fit_on"]) == "train" and int(f["n_samples_seen"]) == norm.n_samples_seen_
            assert "numpy" in str(f["version_numpy"]) or str(f["version_numpy"]) == np.__version__
            assert str(f["version_librosa"]) and f["keep_rows"].dtype == bool
        buf.seek(0)
        back = spec.load_normalizer(buf)
        np.testing.assert_array_equal(back.transform(X[:30]), norm.transform(X[:30]))
        assert back.config_ == norm.config_ and back.shape_out_ == norm.shape_out_


def test_fit_plans_use_the_comparisons_splits(data):
    from diagnostics.config import SPLIT_SEED
    from diagnostics.verdicts.design import design_folds, make_design

    _, X, y = data
    n = len(y)
    assert np.array_equal(spec.FitPlan().indices(n, y), np.arange(n))
    assert np.array_equal(spec.FitPlan("train").indices(n, y), split_indices(n, y).train)
    want = design_folds(make_design(y, kind="cv", folds=5, seed=SPLIT_SEED), y, repetition=1)[3]
    assert np.array_equal(spec.FitPlan("fold", 3, 5, 1).indices(n, y), want.train)
    with pytest.raises(NormScopeError, match=r"fold 5 does not exist: this 5-fold .* folds 0..4"):
        spec.FitPlan("fold", 5).indices(n, y)
    with pytest.raises(NormScopeError, match="needs labels"):
        spec.FitPlan("fold", 0).indices(n, None)


def test_export_zip_holds_the_three_files(data):
    from models.export import export_zip

    _, X, y = data
    ds = Dataset(X=X, y=y, class_names=tuple("abcd"), name="power", id="p0")
    blob, name = export_zip(ds, "db+instance_row")
    assert name == "normalizer-p0-db_instance_row.zip"
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        assert sorted(z.namelist()) == ["USAGE.md", "normalizer.npz", "normalizer.pt2"]
        back = spec.load_normalizer(io.BytesIO(z.read("normalizer.npz")))
    np.testing.assert_array_equal(back.transform(X[:9]),
                                  Normalizer("db+instance_row").fit(X).transform(X[:9]))
    signed = Dataset(X=X - 1.0, y=y, class_names=tuple("abcd"), name="s", id="s0")
    with pytest.raises(NormScopeError, match=r"^pcen\+none refused: .* are negative"):
        export_zip(signed, "pcen")


def test_cli_refuses_bad_exports_with_one_line(cli, cli_main, home, data, tmp_path):
    path, X, y = data
    signed = tmp_path / "signed.npz"
    np.savez(signed, X=X - 1.0, y=y)
    cases = [
        (["export", str(signed), "--config", "db+per_row", "--out", str(tmp_path / "o")],
         r"^error: db\+per_row refused: .* are negative"),
        (["export", str(path), "--config", "per-pixel", "--out", str(tmp_path / "o")],
         r"^error: configuration 'per-pixel' has an unknown scaler 'per-pixel'; valid parts"),
        (["export", str(path), "--config", "pcen:t=0", "--out", str(tmp_path / "o")],
         r"^error: pcen parameter t=0 is out of range"),
        (["export", str(path), "--config", "per_row@mask", "--mask-snr", "1e9", "--out",
          str(tmp_path / "o")], r"^error: per_row@mask: mask_snr=1e\+09 removes all 12 rows"),
        (["export", str(path), "--config", "none", "--fit-on", "fold", "--out", str(tmp_path / "o")],
         r"^error: --fit-on fold needs --fold K"),
        (["export", str(path), "--config", "none", "--out", str(path)],
         r"^error: --out .* is a file; name a folder"),
    ]
    for i, (args, want) in enumerate(cases):
        r = (cli if i == 0 else cli_main)(*args)  # one real process, then main in this one
        assert r.returncode == 2, (args, r.stderr)
        assert re.match(want, r.stderr) and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "o").exists()


TS_CONFIGS = ["db+per_row@mask", "pcen+per_row@mask", "instance_row", "shrink"]


PT2 = 'torch.export.load(out + "/normalizer.pt2").module()'
TS = 'torch.jit.load(out + "/normalizer.pt")'


def _agrees_in_a_clean_interpreter(tmp_path: Path, outs: list[str], held: np.ndarray,
                                   load: str) -> list[tuple]:
    """Load each exported module (``load``: PT2 or TS, an expression of ``out``) in a clean
    interpreter and apply it to ``held``; (max error at B=n, at B=1) against ``out/ref.npy``."""
    np.save(tmp_path / "held.npy", held[:, None])
    run = tmp_path / "elsewhere"
    run.mkdir(exist_ok=True)
    code = textwrap.dedent(f"""
        import importlib.util, numpy as np, torch
        assert importlib.util.find_spec("diagnostics") is None
        assert importlib.util.find_spec("models") is None
        x = torch.from_numpy(np.load({str(tmp_path / 'held.npy')!r}))
        for out in {outs!r}:
            f = {load}
            got = f(x)
            assert got.dtype == torch.float32 and got.shape[1] == 1
            ref = np.load(out + "/ref.npy")
            assert tuple(got.shape) == (ref.shape[0], 1, *ref.shape[1:]), got.shape
            err = float(np.abs(got[:, 0].numpy() - ref).max())
            one = float(np.abs(f(x[:1])[:, 0].numpy() - ref[:1]).max())
            print(err, one)
    """)
    p = _clean_python(code, run)
    assert p.returncode == 0, p.stderr[-2000:]
    return [tuple(map(float, line.split())) for line in p.stdout.splitlines()]


@pytest.mark.slow
def test_torchscript_module_in_a_clean_interpreter_equals_transform(cli, cli_main, home, data,
                                                                     tmp_path):
    """``--torchscript``: the fallback's format, asked for; same numbers as transform."""
    path, X, y = data
    split = split_indices(len(y), y)
    outs = []
    for i, cfg in enumerate(TS_CONFIGS):
        out = tmp_path / f"ts{i}"
        (out).mkdir()
        (out / "normalizer.pt2").write_bytes(b"left by an earlier export")
        run = cli if i == 0 else cli_main  # one real process, then the CLI's main in this one
        r = run("export", str(path), "--config", cfg, "--out", str(out), "--fit-on", "train",
                "--torchscript")
        assert r.returncode == 0, r.stderr
        # Never two modules in one folder.
        assert sorted(p.name for p in out.iterdir()) == ["USAGE.md", "normalizer.npz",
                                                         "normalizer.pt"]
        usage = (out / "USAGE.md").read_text()
        assert "TorchScript" in usage and "`--torchscript`" in usage
        assert 'torch.jit.load("normalizer.pt")' in usage
        ref = Normalizer(cfg).fit(X, indices=split.train).transform(X[split.test])
        np.save(out / "ref.npy", ref)
        outs.append(str(out))
    errs = _agrees_in_a_clean_interpreter(tmp_path, outs, X[split.test], TS)
    assert len(errs) == len(TS_CONFIGS)
    for cfg, (err, one) in zip(TS_CONFIGS, errs):
        assert err <= 1e-5 and one <= 1e-5, (cfg, err, one)


@pytest.mark.slow
def test_a_module_torch_export_refuses_falls_back_to_torchscript(data, tmp_path):
    """The automatic fallback, through a module torch.export really cannot export (a branch on
    the input's values), not a stand-in for torch."""
    import torch

    from models.export import NormalizerModule, export_program

    class DataDependent(NormalizerModule):
        def forward(self, x):
            if bool(torch.isfinite(x).all()):  # a data-dependent branch: torch.export refuses
                return super().forward(x)
            return super().forward(torch.nan_to_num(x))

    _, X, y = data
    split = split_indices(len(y), y)
    cfg = "pcen+per_row@mask"
    ds = Dataset(X=X, y=y, class_names=tuple("abcd"), name="power", id="p0")
    norm, meta = spec.fit_for_export(ds, cfg, plan=spec.FitPlan("train"))
    arrays = spec.normalizer_arrays(norm, meta)
    with pytest.raises(Exception):  # the premise: torch.export cannot take it
        torch.export.export(DataDependent(arrays).eval(), (torch.zeros(2, 1, 12, 40),),
                            dynamic_shapes=({0: torch.export.Dim("batch")},))
    out = tmp_path / "fb"
    out.mkdir()
    buf = io.BytesIO()
    kind, why = export_program(DataDependent(arrays).eval(), buf)
    assert kind == "pt" and why.startswith("because torch.export could not export it (")
    (out / "normalizer.pt").write_bytes(buf.getvalue())
    usage = spec.usage_text(arrays, module_file=spec.PT_NAME, why=why)
    assert "TorchScript" in usage and why in usage
    np.save(out / "ref.npy", norm.transform(X[split.test]))
    (err, one), = _agrees_in_a_clean_interpreter(tmp_path, [str(out)], X[split.test], TS)
    assert err <= 1e-5 and one <= 1e-5, (err, one)
