"""Table 1 and the unlabelled-set composition, end to end at full scale: fake raw archives that use
every real file name of the published split files (tiny images), `sagan prepare`, `sagan splits`."""

from __future__ import annotations

import json

import pytest

from sagan.cli import main
from sagan.data.ingest import prepare_dataset
from sagan.data.prepared import load_prepared
from sagan.data.splits import published_split
from tests.fakes import tiny_split, write_lag_raw, write_medad_folder, write_rsna_raw, write_vindr_raw

# Table 1 of the paper (T_n, unlabelled pools, test) and the AR = 0.6 composition (data.md)
TABLE1 = {
    "rsna": {"train_normal": 3851, "unlabeled_normal": 4000, "unlabeled_abnormal": 5012, "test": 1000},
    "vindr": {"train_normal": 4000, "unlabeled_normal": 5606, "unlabeled_abnormal": 3394, "test": 1000},
    "lag": {"train_normal": 1500, "unlabeled_normal": 832, "unlabeled_abnormal": 900, "test": 811},
}
AR06 = {"rsna": (2310, 1541), "vindr": (2400, 1600), "lag": (900, 600)}
BUILDERS = {"rsna": (write_rsna_raw, "zip"), "vindr": (write_vindr_raw, "dir"), "lag": (write_lag_raw, "zip")}


@pytest.fixture(scope="module", params=["rsna", "vindr", "lag"])
def full_scale(request, tmp_path_factory):
    """(dataset, prepared folder, `sagan splits` summary) for a full-scale fake of a real dataset."""
    dataset = request.param
    tmp = tmp_path_factory.mktemp(dataset)
    build, form = BUILDERS[dataset]
    raw = build(tmp / (f"{dataset}.zip" if form == "zip" else dataset), published_split(dataset), form=form)
    prepared = tmp / "prepared"
    assert main(["prepare", dataset, "--source", str(raw), "--out", str(prepared), "--image-size", "8",
                 "--workers", "2"]) == 0  # fmt: skip
    summary = tmp / "splits.json"
    assert main(["splits", str(prepared), "--out", str(summary), "--ratios", "0,0.2,0.4,0.6,0.8,1.0"]) == 0
    return dataset, prepared, json.loads(summary.read_text())


@pytest.mark.slow
def test_table1_counts_and_label_check(full_scale):
    dataset, prepared, summary = full_scale
    want = TABLE1[dataset]
    t1 = summary["table1"]
    assert t1["train_normal"] == want["train_normal"] == t1["unlabeled_total"]
    assert (t1["unlabeled_normal"], t1["unlabeled_abnormal"]) == (
        want["unlabeled_normal"],
        want["unlabeled_abnormal"],
    )
    assert t1["test_normal"] == t1["test_abnormal"] == want["test"]
    assert summary["label_check"]["n_disagreements"] == 0
    assert summary["label_check"]["n_checked"] == len(load_prepared(prepared, mmap=True).index)


@pytest.mark.slow
def test_unlabeled_composition_at_ar_06(full_scale):
    dataset, _prepared, summary = full_scale
    n_abnormal, n_normal = AR06[dataset]
    assert summary["unlabeled"]["0.6"] == {
        "n_abnormal": n_abnormal,
        "n_normal": n_normal,
        "U": n_abnormal + n_normal,
        "requested_U": n_abnormal + n_normal,
    }
    assert summary["unlabeled"]["0_u"]["U"] == 0
    if dataset == "lag":  # U = 1500 normals, but the normal pool holds only 832: AR < 0.446 is impossible
        assert "832 normal" in summary["unlabeled"]["0"]["error"]
    else:
        assert summary["unlabeled"]["0"]["n_abnormal"] == 0


@pytest.mark.slow
def test_ar_above_06(full_scale, tmp_path):
    dataset, prepared, summary = full_scale
    unl = summary["unlabeled"]
    # RSNA's abnormal pool (5012) covers every ratio; VinDr's (3394) up to 0.8 (3200); LAG's (900) up to 0.6
    possible = {"rsna": ("0.8", "1.0"), "vindr": ("0.8",), "lag": ()}[dataset]
    for ratio in ("0.8", "1.0"):
        if ratio in possible:
            assert unl[ratio]["n_abnormal"] == int(summary["table1"]["train_normal"] * float(ratio))
        else:
            err = unl[ratio]["error"]
            assert f"anomaly ratio {float(ratio):g} needs" in err and "shrink" in err
            assert f"pools hold {summary['table1']['unlabeled_abnormal']} abnormal" in err
    if dataset != "lag":
        return
    out = tmp_path / "shrunk.json"
    assert (
        main(["splits", str(prepared), "--out", str(out), "--ratios", "0.8", "--on-small-pool", "shrink"])
        == 0
    )
    shrunk = json.loads(out.read_text())["unlabeled"]["0.8"]
    assert shrunk == {"n_abnormal": 900, "n_normal": 226, "U": 1126, "requested_U": 1500}


def test_splits_rejects_bad_ratio(tmp_path, capsys):
    data = prepare_dataset(
        "medad", write_medad_folder(tmp_path / "f", tiny_split()), tmp_path / "p", workers=1
    )
    assert main(["splits", str(data), "--out", str(tmp_path / "s.json"), "--ratios", "0.6,abc"]) == 2
    assert "'abc' is not a number" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()
