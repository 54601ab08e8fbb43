"""Fetch a raw dataset, or record where the user already keeps it (air-gapped machines).

`sagan download DATASET --out DIR [--source kaggle|URL|PATH] [--sha256 HEX]` leaves in DIR a small
record `<dataset>.source.json` naming the raw archive or folder; `sagan prepare --source` accepts
that record. Sources:
    kaggle  rsna, vindr: the official Kaggle client (competition files, one zip)
    URL     any dataset (meant for LAG): streamed to a temporary file, sha256 checked, renamed
    PATH    any dataset: a local archive (zip, tar, tar.gz) or folder, recorded in place (never
            copied: VinDr is about 200 GB)
A finished download is `DIR/<file>` plus `DIR/<file>.complete.json` (size, mtime, sha256), written
only once the file is complete and verified; unfinished bytes live under `DIR/.partial/`, so a
partial download is never taken for a complete one, and a rerun resumes or restarts it.
`sagan check-sources` checks, without network, that every configured source is usable.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from sagan.atomic import write_atomic
from sagan.data.archives import open_archive
from sagan.errors import DatasetError

log = logging.getLogger(__name__)

KAGGLE_COMPETITIONS = {
    "rsna": "rsna-pneumonia-detection-challenge",
    "vindr": "vinbigdata-chest-xray-abnormalities-detection",
}
DATASETS = ("rsna", "vindr", "lag")
DEMO_HINT = "to run the demo on synthetic data instead: snakemake --cores all --configfile config/demo.yaml"
KAGGLE_CREDENTIALS_HELP = (
    "create an API token at https://www.kaggle.com/settings (section API) and either save kaggle.json "
    "to ~/.kaggle/kaggle.json (chmod 600; KAGGLE_CONFIG_DIR moves the folder), or export "
    "KAGGLE_USERNAME and KAGGLE_KEY, or export KAGGLE_API_TOKEN"
)
LAG_HELP = (
    "LAG is not on Kaggle. Its Med-AD copy is Zenodo record 12677223, file LAG.tar.gz (academic use "
    "only, no re-upload; the original comes from the authors of 'Attention based glaucoma detection', "
    "CVPR 2019, on request). Download it where you can (https://zenodo.org/records/12677223) and pass "
    "--source /path/to/LAG.tar.gz (or the extracted folder), or pass --source URL --sha256 HEX "
    "(or URL#sha256=HEX) to fetch it here"
)
CHUNK = 1 << 20


def rules_url(slug: str) -> str:
    return f"https://www.kaggle.com/competitions/{slug}/rules"


def check_sha256(value: str | None, where: str) -> str | None:
    """An expected SHA-256 as 64 lowercase hex digits (None if not given); DatasetError if it is not one."""
    if not value:
        return None
    if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise DatasetError(
            f"{where}: {value!r} is not a SHA-256 hash (64 hex digits); give the hash published with the "
            "file (or `sha256sum FILE` of a copy you trust)"
        )
    return value.lower()


def split_url_hash(source: str, sha256: str | None = None) -> tuple[str, str | None]:
    """'URL#sha256=HEX' -> (URL, HEX) (pip's convention); an explicit `sha256` wins. Both are checked."""
    url, _, fragment = source.partition("#")
    if sha256:
        return url, check_sha256(sha256, "--sha256")
    if fragment.startswith("sha256="):
        return url, check_sha256(fragment.removeprefix("sha256="), f"{url}#sha256=")
    return url, None


def is_url(source: str) -> bool:
    return urllib.parse.urlparse(source).scheme in ("http", "https", "ftp")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Complete markers and source records
# --------------------------------------------------------------------------------------------


def marker_path(final: Path) -> Path:
    return final.with_name(final.name + ".complete.json")


def is_complete(final: Path) -> bool:
    """True if `final` has a complete-marker that still matches its size and modification time."""
    marker = marker_path(final)
    if not (final.is_file() and marker.is_file()):
        return False
    try:
        info = json.loads(marker.read_text())
        st = final.stat()
        return info["size"] == st.st_size and info["mtime_ns"] == st.st_mtime_ns
    except (json.JSONDecodeError, KeyError, OSError):
        return False


def finish(partial: Path, final: Path, origin: str, sha256: str | None = None) -> dict:
    """Rename a verified download into place, then write its complete-marker."""

    sha256 = sha256 or sha256_file(partial)
    os.replace(partial, final)
    st = final.stat()
    info = {"origin": origin, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}
    write_atomic(marker_path(final), json.dumps(info, indent=2) + "\n")
    return info


def write_record(out: Path, dataset: str, kind: str, origin: str, path: Path, sha256: str | None) -> Path:
    """`<out>/<dataset>.source.json`: where the raw data of `dataset` is (what `prepare` reads)."""

    record = {
        "dataset": dataset,
        "kind": kind,
        "origin": origin,
        "path": str(path.resolve()),
        "sha256": sha256,
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    rec = out / f"{dataset}.source.json"
    write_atomic(rec, json.dumps(record, indent=2) + "\n")
    return rec


# --------------------------------------------------------------------------------------------
# Kaggle
# --------------------------------------------------------------------------------------------


def kaggle_config_dir() -> Path:
    """The folder the Kaggle client reads kaggle.json from (same rule as the client)."""
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return Path(os.environ["KAGGLE_CONFIG_DIR"])
    home = Path.home() / ".kaggle"
    if sys.platform.startswith("linux") and not home.exists():
        return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kaggle"
    return home


def kaggle_credentials_found() -> str | None:
    """Where Kaggle credentials were found (without network), or None."""
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    for name in ("access_token", "access_token.txt", "credentials.json"):
        if (Path.home() / ".kaggle" / name).is_file():
            return f"~/.kaggle/{name}"
    config = kaggle_config_dir() / "kaggle.json"
    values: dict = {}
    if config.is_file():
        try:
            values = json.loads(config.read_text()) or {}
        except (json.JSONDecodeError, OSError):
            values = {}
    user = os.environ.get("KAGGLE_USERNAME") or values.get("username")
    key = os.environ.get("KAGGLE_KEY") or values.get("key")
    if user and key:
        return str(config) if values.get("username") and values.get("key") else "KAGGLE_USERNAME/KAGGLE_KEY"
    return None


def kaggle_api() -> Any:
    """An authenticated KaggleApi; DatasetError with the fix if credentials are missing or refused."""
    if kaggle_credentials_found() is None:
        raise DatasetError(
            f"no Kaggle credentials found: {KAGGLE_CREDENTIALS_HELP}.\n{DEMO_HINT[0].upper()}{DEMO_HINT[1:]}"
        )
    # importing kaggle authenticates once and prints the client's own help on failure: keep it quiet
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
        try:
            api.authenticate()
        except SystemExit:
            raise DatasetError(
                f"Kaggle refused the credentials ({printed.getvalue().strip()[:200]}): {KAGGLE_CREDENTIALS_HELP}"
            ) from None
    return api


def _kaggle_error(err: Exception, slug: str, partial_dir: Path) -> DatasetError:
    status = getattr(getattr(err, "response", None), "status_code", None)
    if status == 403:
        return DatasetError(
            f"Kaggle answered 403 Forbidden for {slug}: accept the competition rules at {rules_url(slug)} "
            "(signed in with the account of your API token), then run the same command again"
        )
    if status == 401:
        return DatasetError(f"Kaggle rejected the credentials (401 Unauthorized): {KAGGLE_CREDENTIALS_HELP}")
    if status == 404:
        return DatasetError(f"Kaggle has no competition {slug!r} (404); check the name")
    return DatasetError(
        f"download of {slug} failed ({type(err).__name__}: {err}); run the same command again to resume "
        f"(partial data kept in {partial_dir}), or download elsewhere and pass --source /path/to/archive"
    )


def download_kaggle(dataset: str, out: Path) -> Path:
    """The competition zip of rsna/vindr in `out` (not fetched again when already complete)."""
    slug = KAGGLE_COMPETITIONS[dataset]
    final = out / f"{slug}.zip"
    if is_complete(final):
        log.info("%s is complete (%s); not downloading again", final, marker_path(final).name)
        return final
    api = kaggle_api()  # before any work: fail fast on missing credentials
    import requests

    partial_dir = out / ".partial"
    partial_dir.mkdir(parents=True, exist_ok=True)
    log.info("downloading competition %s to %s (resumes a partial download if the server allows)", slug, out)
    try:
        # quiet=False: the client prints a tqdm progress bar
        api.competition_download_files(slug, path=str(partial_dir), quiet=False)
    except (requests.exceptions.RequestException, OSError, ValueError) as err:
        raise _kaggle_error(err, slug, partial_dir) from None
    got = [p for p in partial_dir.glob(f"{slug}.*") if not p.name.endswith(".kaggle-partial")]
    if len(got) != 1:
        raise DatasetError(f"the Kaggle client left no single file {slug}.* in {partial_dir}; run again")
    import zipfile

    if not zipfile.is_zipfile(got[0]):
        got[0].unlink()
        raise DatasetError(f"{got[0]} is not a complete zip archive (removed); run the same command again")
    final = out / got[0].name
    info = finish(got[0], final, f"kaggle:{slug}")
    log.info("downloaded %s (%d bytes, sha256 %s)", final, info["size"], info["sha256"])
    return final


# --------------------------------------------------------------------------------------------
# URL
# --------------------------------------------------------------------------------------------


def download_url(url: str, out: Path, sha256: str) -> Path:
    """Stream `url` into `out` (temporary name, sha256 checked, then renamed)."""
    from tqdm import tqdm

    name = Path(urllib.parse.urlparse(url).path).name or "download"
    final = out / name
    if is_complete(final) and json.loads(marker_path(final).read_text()).get("sha256") == sha256:
        log.info("%s is complete (sha256 matches); not downloading again", final)
        return final
    partial = out / ".partial" / name
    partial.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=300) as resp, open(partial, "wb") as fh:
            total = resp.headers.get("Content-Length")
            with tqdm(total=int(total) if total else None, unit="B", unit_scale=True, desc=name) as bar:
                while chunk := resp.read(CHUNK):
                    fh.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
        if total and partial.stat().st_size != int(total):
            raise DatasetError(
                f"{url}: got {partial.stat().st_size} of {total} bytes; run the same command again"
            )
    except (urllib.error.URLError, OSError) as err:
        raise DatasetError(
            f"cannot download {url} ({err}); check the address and network, or download it elsewhere and "
            "pass --source /path/to/the/file"
        ) from None
    if h.hexdigest() != sha256:
        partial.unlink()
        raise DatasetError(
            f"{url}: sha256 {h.hexdigest()} does not match the expected {sha256} (download removed); "
            "check the address and the expected hash"
        )
    finish(partial, final, url, sha256)
    return final


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def download_dataset(
    dataset: str, out: str | Path, source: str = "kaggle", sha256: str | None = None
) -> Path:
    """Fetch or record the raw data of `dataset`; returns the record `<out>/<dataset>.source.json`."""
    if dataset not in DATASETS:
        raise DatasetError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    sha256 = check_sha256(sha256, "--sha256")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if source == "kaggle":
        if dataset not in KAGGLE_COMPETITIONS:
            raise DatasetError(LAG_HELP)
        path = download_kaggle(dataset, out)
        return write_record(out, dataset, "kaggle", KAGGLE_COMPETITIONS[dataset], path, _marker_sha(path))
    if is_url(source):
        url, sha256 = split_url_hash(source, sha256)
        if not sha256:
            raise DatasetError(
                f"{url}: give the expected --sha256 (or URL#sha256=HEX) so the download is verified"
            )
        path = download_url(url, out, sha256)
        return write_record(out, dataset, "url", url, path, sha256)
    path = Path(source).expanduser()
    if not path.exists():
        hint = f" {LAG_HELP}" if dataset == "lag" else ""
        raise DatasetError(
            f"--source {source}: no such file or folder (give 'kaggle', a URL, or a local path).{hint}"
        )
    open_archive(path)  # a folder, zip or tar archive, or a clear error
    if sha256 and path.is_file():
        got = sha256_file(path)
        if got != sha256:
            raise DatasetError(f"{path}: sha256 {got} does not match the expected {sha256}")
    # recorded in place, not copied (the record is what `prepare` reads)
    return write_record(out, dataset, "local", str(path), path, sha256)


def _marker_sha(path: Path) -> str | None:
    try:
        return json.loads(marker_path(path).read_text()).get("sha256")
    except (OSError, json.JSONDecodeError):
        return None


def check_sources(specs: list[str]) -> list[str]:
    """Problems (empty if none) of 'DATASET=SOURCE' specs, checked without network."""
    problems = []
    for spec in specs:
        dataset, sep, source = spec.partition("=")
        dataset, source = dataset.strip(), source.strip()
        # a pinned hash may follow any source (URL#sha256=HEX); only a URL needs one
        try:
            plain, pinned = split_url_hash(source)
        except DatasetError as err:
            problems.append(f"{dataset}: {err}")
            continue
        if not sep or not dataset or not source:
            problems.append(f"{spec!r}: expected DATASET=SOURCE, e.g. rsna=kaggle or lag=/data/LAG.tar.gz")
        elif dataset not in DATASETS:
            problems.append(f"{dataset}: unknown dataset (known: {', '.join(DATASETS)})")
        elif plain == "kaggle":
            if dataset not in KAGGLE_COMPETITIONS:
                problems.append(f"lag=kaggle: {LAG_HELP}")
            elif kaggle_credentials_found() is None:
                problems.append(
                    f"{dataset}=kaggle: no Kaggle credentials found: {KAGGLE_CREDENTIALS_HELP}; the account must "
                    f"also have accepted the rules at {rules_url(KAGGLE_COMPETITIONS[dataset])}"
                )
        elif is_url(plain):
            if not pinned:
                problems.append(
                    f"{dataset}={source}: a URL needs its expected sha256, written URL#sha256=HEX "
                    "(config: datasets.<name>.sha256)"
                )
        elif not Path(plain).expanduser().exists():
            hint = f" ({LAG_HELP})" if dataset == "lag" else ""
            problems.append(
                f"{dataset}={plain}: no such file or folder; give the raw archive (zip, tar, tar.gz) or "
                f"folder, a URL#sha256=HEX, or 'kaggle'{hint}"
            )
    return problems


def cli_download(args: Any) -> int:
    """`sagan download DATASET --out DIR [--source kaggle|URL|PATH] [--sha256 HEX]`."""
    record = download_dataset(args.dataset, args.out, args.source, args.sha256)
    print(f"{args.dataset}: raw data at {json.loads(record.read_text())['path']} (recorded in {record})")
    return 0


def cli_check_sources(args: Any) -> int:
    """`sagan check-sources --dataset rsna=kaggle --dataset lag=/path ...`: one message, non-zero if unusable."""
    if not args.dataset:
        raise DatasetError(f"no --dataset DATASET=SOURCE given; {DEMO_HINT}")
    problems = check_sources(args.dataset)
    if problems:
        raise DatasetError(
            "dataset sources not usable:\n  - " + "\n  - ".join(problems) + f"\nFix the above, or {DEMO_HINT}"
        )
    print(
        "sources usable: "
        + ", ".join(args.dataset)
        + " (credentials and rules are verified at download time)"
    )
    return 0
