"""Download through the real Kaggle client against a local stub server, URL and local sources,
and `sagan check-sources`. The client runs in a subprocess (its configuration is import-time state)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sagan.cli import main
from sagan.data.download import DEMO_HINT, KAGGLE_COMPETITIONS, marker_path, rules_url
from sagan.data.prepared import load_prepared
from tests.fakes import KaggleStub, pack, tiny_split, write_medad_folder, write_rsna_raw

RSNA = KAGGLE_COMPETITIONS["rsna"]
VINDR = KAGGLE_COMPETITIONS["vindr"]
ROOT = Path(__file__).resolve().parents[1]
# redirect the real client to the stub: LOCALHOST environment, endpoint patched before kaggle is imported
RUNNER = (
    "import sys, kagglesdk.kaggle_env as e; e._env_to_endpoint[e.KaggleEnv.LOCAL] = sys.argv[1]; "
    "from sagan.cli import main; sys.exit(main(sys.argv[2:]))"
)


@pytest.fixture()
def kaggle_env(tmp_path, monkeypatch):
    """An isolated home and Kaggle config folder (no credentials), also for in-process calls."""
    home, config = tmp_path / "home", tmp_path / "kaggle-config"
    home.mkdir()
    config.mkdir()
    for k in list(os.environ):
        if k.startswith("KAGGLE_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config))
    return config


def with_kaggle_json(config: Path, username: str = "tester", key: str = "secret") -> None:
    (config / "kaggle.json").write_text(json.dumps({"username": username, "key": key}))
    (config / "kaggle.json").chmod(0o600)


def sagan_subprocess(stub: KaggleStub, *args: str, wait: bool = True, **extra_env: str):
    env = {**os.environ, "KAGGLE_API_ENVIRONMENT": "LOCALHOST", "PYTHONPATH": str(ROOT), **extra_env}
    cmd = [sys.executable, "-c", RUNNER, stub.url, *args]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def rsna_zip(tmp_path_factory) -> bytes:
    """A small RSNA competition zip in the real layout, padded past the client's 1 MiB chunk size."""
    tmp = tmp_path_factory.mktemp("rsna")
    raw = write_rsna_raw(tmp / "raw", tiny_split(), size=64)
    (raw / "stage_2_sample_submission.csv").write_bytes(os.urandom(3 << 20))  # incompressible filler
    return pack(raw, "zip", tmp / f"{RSNA}.zip", top=None).read_bytes()


def test_kaggle_download_then_prepare_and_no_second_request(kaggle_env, tmp_path, rsna_zip):
    with_kaggle_json(kaggle_env)
    out = tmp_path / "raw"
    with KaggleStub({f"{RSNA}.zip": rsna_zip}) as stub:
        r = sagan_subprocess(stub, "download", "rsna", "--out", str(out))
        assert r.returncode == 0, r.stderr
        assert [m for m, _, _ in stub.requests] == ["POST", "GET"]
        final = out / f"{RSNA}.zip"
        assert final.read_bytes() == rsna_zip
        info = json.loads(marker_path(final).read_text())
        assert info["sha256"] == hashlib.sha256(rsna_zip).hexdigest() and info["size"] == len(rsna_zip)
        assert "%" in r.stderr  # the client's progress bar
        record = json.loads((out / "rsna.source.json").read_text())
        assert record["path"] == str(final.resolve()) and record["kind"] == "kaggle"
        # already complete: no request at all, even without credentials
        (kaggle_env / "kaggle.json").unlink()
        r = sagan_subprocess(stub, "download", "rsna", "--out", str(out))
        assert r.returncode == 0, r.stderr
        assert len(stub.requests) == 2
    ds = load_prepared(
        main_ok("prepare", "rsna", "--source", str(out / "rsna.source.json"), "--out", str(tmp_path / "p"),
                "--image-size", "8", "--workers", "1", "--split", str(write_split(tmp_path))) and tmp_path / "p"
    )  # fmt: skip
    assert len(ds.index) == 14 and ds.meta["source_kind"] == "zip"


def write_split(tmp_path: Path) -> Path:
    path = tmp_path / "split.json"
    path.write_text(json.dumps(tiny_split()))
    return path


def main_ok(*args: str) -> bool:
    assert main(list(args)) == 0
    return True


def test_missing_credentials_fail_before_any_request(kaggle_env, tmp_path, rsna_zip):
    with KaggleStub({f"{RSNA}.zip": rsna_zip}) as stub:
        r = sagan_subprocess(stub, "download", "rsna", "--out", str(tmp_path / "raw"))
    assert r.returncode == 2
    assert (
        "no Kaggle credentials found" in r.stderr and "kaggle.json" in r.stderr and DEMO_HINT[1:] in r.stderr
    )
    assert "Traceback" not in r.stderr and stub.requests == []
    assert not (tmp_path / "raw" / f"{RSNA}.zip").exists()


def test_invalid_token_is_refused_by_the_client(kaggle_env, tmp_path, rsna_zip):
    with KaggleStub({f"{RSNA}.zip": rsna_zip}) as stub:
        r = sagan_subprocess(
            stub, "download", "rsna", "--out", str(tmp_path / "raw"), KAGGLE_API_TOKEN="expired"
        )
    assert r.returncode == 2 and "Kaggle refused the credentials" in r.stderr, r.stderr
    # only token introspection (at import and at authenticate), never a download request
    assert stub.requests and not any("Download" in path for _, path, _ in stub.requests)


def test_wrong_key_401_and_rules_not_accepted_403(kaggle_env, tmp_path, rsna_zip):
    with_kaggle_json(kaggle_env, key="wrong")
    with KaggleStub({f"{RSNA}.zip": rsna_zip}) as stub:
        r = sagan_subprocess(stub, "download", "rsna", "--out", str(tmp_path / "raw"))
    assert r.returncode == 2 and "rejected the credentials (401" in r.stderr, r.stderr
    with_kaggle_json(kaggle_env)
    with KaggleStub({f"{VINDR}.zip": b"PK"}, forbidden=[VINDR]) as stub:
        r = sagan_subprocess(stub, "download", "vindr", "--out", str(tmp_path / "raw"))
    assert r.returncode == 2
    assert f"accept the competition rules at {rules_url(VINDR)}" in r.stderr and "Traceback" not in r.stderr


def test_killed_download_is_not_complete_and_a_rerun_completes(kaggle_env, tmp_path, rsna_zip):
    with_kaggle_json(kaggle_env)
    out = tmp_path / "raw"
    final = out / f"{RSNA}.zip"
    with KaggleStub({f"{RSNA}.zip": rsna_zip}) as stub:
        stub.cut(len(rsna_zip) // 2, "hang")
        proc = sagan_subprocess(stub, "download", "rsna", "--out", str(out), wait=False)
        assert stub.body_cut.wait(60), "the client never started the download"
        partial = out / ".partial" / f"{RSNA}.zip"
        deadline = time.time() + 30
        while not (partial.is_file() and partial.stat().st_size > 0) and time.time() < deadline:
            time.sleep(0.05)  # the client flushes every 1 MiB
        proc.kill()  # interrupted: node preempted, Ctrl-C, lost connection
        proc.communicate()
        stub.release()
        assert not final.exists() and not marker_path(final).exists()
        assert 0 < partial.stat().st_size < len(rsna_zip)
        r = sagan_subprocess(stub, "download", "rsna", "--out", str(out))
        assert r.returncode == 0, r.stderr
    assert final.read_bytes() == rsna_zip and marker_path(final).is_file()
    assert stub.requests[-1][2] is not None  # the rerun resumed with a Range request


def test_server_closing_mid_body_is_retried_by_the_client(kaggle_env, tmp_path, rsna_zip):
    with_kaggle_json(kaggle_env)
    out = tmp_path / "raw"
    with KaggleStub({f"{RSNA}.zip": rsna_zip}) as stub:
        stub.cut(len(rsna_zip) // 3, "close")
        r = sagan_subprocess(stub, "download", "rsna", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert (out / f"{RSNA}.zip").read_bytes() == rsna_zip
    assert [g[2] is not None for g in stub.requests if g[0] == "GET"] == [False, True]


# --------------------------------------------------------------------------------------------
# URL and local sources (no Kaggle)
# --------------------------------------------------------------------------------------------


@pytest.fixture()
def lag_archive(tmp_path) -> Path:
    return pack(
        write_medad_folder(tmp_path / "LAG", tiny_split(ext=".jpg"), boxes=False, masks=False), "tar.gz"
    )


def test_url_download_checks_sha256(tmp_path, lag_archive):
    data = lag_archive.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    out = tmp_path / "raw"
    with KaggleStub({"LAG.tar.gz": data}) as stub:
        url = f"{stub.url}/storage/LAG.tar.gz"
        assert main(["download", "lag", "--out", str(out), "--source", url, "--sha256", sha]) == 0
        assert (out / "LAG.tar.gz").read_bytes() == data and not list((out / ".partial").iterdir())
        assert main(["download", "lag", "--out", str(out), "--source", f"{url}#sha256={sha}"]) == 0
        assert len(stub.requests) == 1  # complete with the same hash: not fetched again
        assert (
            main(["download", "lag", "--out", str(tmp_path / "o2"), "--source", url, "--sha256", "0" * 64])
            == 2
        )
        assert main(["download", "lag", "--out", str(tmp_path / "o3"), "--source", url]) == 2
    assert not (tmp_path / "o2" / "LAG.tar.gz").exists() and not list(
        (tmp_path / "o2" / ".partial").iterdir()
    )
    ds = load_prepared(main_ok("prepare", "lag", "--source", str(out / "lag.source.json"), "--out",
                               str(tmp_path / "p"), "--workers", "1", "--split", str(lag_archive.parent / "LAG" / "data.json"))
                       and tmp_path / "p")  # fmt: skip
    assert ds.meta["source_kind"] == "tar" and len(ds.index) == 14


def test_local_source_is_recorded_not_copied(tmp_path, lag_archive, capsys):
    out = tmp_path / "raw"
    assert main(["download", "lag", "--out", str(out), "--source", str(lag_archive)]) == 0
    assert [p.name for p in out.iterdir()] == ["lag.source.json"]
    assert json.loads((out / "lag.source.json").read_text())["path"] == str(lag_archive.resolve())
    assert main(["download", "lag", "--out", str(out), "--source", str(tmp_path / "missing.tar.gz")]) == 2
    assert "Zenodo record 12677223" in capsys.readouterr().err
    assert main(["download", "lag", "--out", str(out)]) == 2  # lag=kaggle
    assert "LAG is not on Kaggle" in capsys.readouterr().err


def test_check_sources_one_message_listing_everything(kaggle_env, tmp_path, lag_archive, capsys, monkeypatch):
    args = ["check-sources", "--dataset", "rsna=kaggle", "--dataset", "vindr=/no/such/VinDr.zip",
            "--dataset", "lag=https://zenodo.org/records/12677223/files/LAG.tar.gz"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("sagan check-sources: error") == 1
    assert "rsna=kaggle: no Kaggle credentials found" in err and rules_url(RSNA) in err
    assert "vindr=/no/such/VinDr.zip: no such file or folder" in err
    assert "URL#sha256=HEX" in err and DEMO_HINT in err
    with_kaggle_json(kaggle_env)
    ok = ["check-sources", "--dataset", "rsna=kaggle", "--dataset", f"lag={lag_archive}#sha256={'b' * 64}",
          "--dataset", "vindr=https://example.org/v.zip#sha256=" + "a" * 64]  # fmt: skip
    assert main(ok) == 0
    (kaggle_env / "kaggle.json").unlink()
    monkeypatch.setenv("KAGGLE_USERNAME", "u")
    monkeypatch.setenv("KAGGLE_KEY", "k")
    assert main(["check-sources", "--dataset", "vindr=kaggle"]) == 0
