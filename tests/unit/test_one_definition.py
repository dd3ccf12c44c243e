"""Things the app and the command line share, each defined once: the config names, the row
noun, the finished statuses, the comparison's JSON document, the dataset list's signature and
the HTML report."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from diagnostics.data.dataset import Dataset
from diagnostics.errors import NormScopeError
from diagnostics.normalize import COMPRESSIONS, SCALERS, Config, all_config_names, parse_config


def test_all_config_names_are_every_canonical_name_once():
    names = all_config_names()
    assert len(names) == len(set(names)) == 4 * 9 * 2
    assert [parse_config(n).name for n in names] == names  # canonical: parse(name).name == name
    every = {Config(s, c, m).name
             for c, s, m in itertools.product((None,) + COMPRESSIONS, SCALERS, (False, True))}
    assert set(names) == every
    assert names[:2] == ["none", "global"] and names[-1] == "pcen+shrink@mask"  # the app's order


@pytest.mark.parametrize("row_label, noun", [
    ("frequency band", "band"), ("MFCC coefficient", "MFCC coefficient"), ("row", "row"),
])
def test_row_noun(row_label, noun):
    ds = Dataset(X=np.zeros((2, 3, 4), np.float32), y=None, class_names=(), name="x", id="x",
                 row_label=row_label)
    assert ds.row_noun == noun


def test_finished_statuses_are_stored_statuses_and_never_active():
    from models.store import ACTIVE, FINISHED, STATUSES

    assert FINISHED == frozenset(STATUSES) - frozenset(ACTIVE)


def _record(status="done", dataset_id="d1"):
    from models.store import ComparisonRecord, RunRecord

    def run(config, seed, acc, run_status="done"):
        return RunRecord(
            id=f"{config}-{seed}", comparison_id="c1", position=seed, dataset_id=dataset_id,
            config=config, seed=seed, model="linear", hyper={"epochs": 2}, status=run_status,
            test_acc=acc, message=None, created=0.0, started=1.0, finished=2.0, elapsed_s=1.0,
            n_params=10, init_digest="x", versions={},
            history={"epoch": [1, 2], "train_loss": [1.0, math.nan], "train_acc": [0.5, 0.6],
                     "val_acc": [0.5, 0.7]})

    runs = (run("none", 0, 0.80), run("none", 1, 0.82), run("per_pixel", 0, 0.70),
            run("per_pixel", 1, None, "diverged"))
    return ComparisonRecord(
        id="c1", created=100.0, finished=112.5, status=status, dataset_id=dataset_id,
        dataset_name="tiny", data_spec="tiny", labels_spec=None, model="linear",
        configs=["none", "per_pixel"], seeds=[0, 1], hyper={"epochs": 2}, host="h", pid=1,
        runs=runs)


def test_comparison_json_lives_in_results_only():
    import json

    import diagnostics.cli.compare as cli_compare
    from diagnostics.results import comparison_json

    assert not hasattr(cli_compare, "comparison_json")
    doc = comparison_json(_record())
    json.dumps(doc, allow_nan=False)  # NaN losses became null
    assert doc["comparison_id"] == "c1" and doc["elapsed_s"] == 12.5 and doc["seeds"] == 2
    assert [c["name"] for c in doc["configs"]] == ["none", "per_pixel"]
    none, pp = doc["configs"]
    assert none["test_acc_mean"] == pytest.approx(0.81)
    assert [r["status"] for r in pp["runs"]] == ["done", "diverged"]
    assert none["runs"][0]["history"]["train_loss"] == [1.0, None]


def test_listing_signature_changes_on_register_and_delete(home):
    from diagnostics.data import store

    folder = str(home / "datasets")
    assert store.listing_signature() == (folder, 0, 0)
    X = np.random.default_rng(0).random((6, 3, 4)).astype(np.float32)
    ident = store.register_arrays(X, None, (), "a", {"source": "test"})
    registered = store.listing_signature()
    assert registered[0] == folder and registered[2] == 1
    assert store.listing_signature() == registered  # stable while nothing changes
    store.delete_dataset(ident)
    assert store.listing_signature() != registered


@pytest.fixture
def tiny(spectro, labels):
    from diagnostics.stats.summary import dataset_stats

    ds = Dataset(X=spectro, y=labels, class_names=("a", "b", "c", "d"), name="tiny", id="d1")
    return ds, dataset_stats(ds)


def test_build_report_is_one_page_with_the_statistics(tiny):
    from diagnostics.plots.report import build_report

    ds, stats = tiny
    page = build_report(ds, stats, mask_snr=0.2)
    assert page.startswith("<!DOCTYPE html>") and page.count("<html") == 1
    assert "NormScope report — tiny" in page and "dataset id d1 · made " in page
    for text in ("Findings", "Per-pixel statistics", "Row SNR", "masked rows"):
        assert text in page
    assert "Comparison " not in page


def test_build_report_refuses_a_comparison_of_another_dataset(tiny):
    from diagnostics.plots.report import build_report

    ds, stats = tiny
    with pytest.raises(NormScopeError, match="ran on dataset other, not on tiny"):
        build_report(ds, stats, mask_snr=0.2, comparisons=[_record(dataset_id="other")])


def test_build_report_appends_stored_comparisons(tiny):
    from diagnostics.plots.report import build_report

    ds, stats = tiny
    page = build_report(ds, stats, mask_snr=0.2, comparisons=[_record()])
    assert "Comparison c1" in page and "per_pixel" in page and "95% CI" in page
