"""Fake raw datasets in the exact real layouts (data.md), for tests and benchmarks.

Builders write real files: DICOMs through pydicom (RSNA-like 8-bit MONOCHROME2, VinDr-like 12/16-bit
with some MONOCHROME1), the real CSV columns with several rows per image, JPEG/PNG Med-AD folders.
Every builder is deterministic for a given seed. `pack(folder, form)` turns a folder into the zip or
tar(.gz) form (one top-level folder, as users' archives often have).
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image


def tiny_split(
    n_train: int = 4, n_unl0: int = 3, n_unl1: int = 3, n_test: int = 2, ext: str = ".png"
) -> dict:
    """A small Med-AD split with names img000<ext>, img001<ext>, ..."""
    counter = iter(range(10**6))

    def names(k: int) -> list[str]:
        return [f"img{next(counter):03d}{ext}" for _ in range(k)]

    return {
        "train": {"0": names(n_train), "unlabeled": {"0": names(n_unl0), "1": names(n_unl1)}},
        "test": {"0": names(n_test), "1": names(n_test)},
    }


def split_labels(split: dict) -> dict[str, int]:
    """name -> label of every image of a Med-AD split."""
    out = {}
    for names, label in (
        (split["train"]["0"], 0),
        (split["train"]["unlabeled"]["0"], 0),
        (split["train"]["unlabeled"]["1"], 1),
        (split["test"]["0"], 0),
        (split["test"]["1"], 1),
    ):
        out.update(dict.fromkeys(names, label))
    return out


def _pixels(
    rng: np.random.Generator, h: int, w: int, label: int, dtype=np.uint8, high: int = 255
) -> np.ndarray:
    """A smooth gradient plus noise; abnormal images get a bright square (so labels are visible)."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = (xx + yy) / max(1, h + w - 2) * 0.6 + rng.uniform(0, 0.2, (h, w))
    if label == 1:
        base[h // 4 : h // 2, w // 4 : w // 2] += 0.3
    return (np.clip(base, 0, 1) * high).astype(dtype)


# --------------------------------------------------------------------------------------------
# Med-AD folders (medad / LAG)
# --------------------------------------------------------------------------------------------


def write_medad_folder(
    root: str | Path,
    split: dict,
    size: tuple[int, int] = (24, 20),
    seed: int = 0,
    boxes: bool = True,
    masks: bool = True,
    extra_images: int = 0,
) -> Path:
    """A Med-AD folder: images/<name> (JPEG or PNG by the name), data.json, boxes.csv, masks/<stem>.png.

    Abnormal images get a box (two for every other one) and a mask covering the bright square.
    `extra_images` adds images that the split does not name (the ingest must skip them).
    """
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    rows = []
    labels = split_labels(split)
    extras = {f"extra{i:03d}.png": 0 for i in range(extra_images)}
    for i, (name, label) in enumerate({**labels, **extras}.items()):
        Image.fromarray(_pixels(rng, h, w, label)).save(root / "images" / name)
        if label == 1:
            x0, y0, x1, y1 = w // 4, h // 4, w // 2, h // 2
            if boxes:
                rows.append(f"{name},{x0},{y0},{x1},{y1}")
                if i % 2:
                    rows.append(f"{name},0,0,{w // 8},{h // 8}")
            if masks:
                (root / "masks").mkdir(exist_ok=True)
                m = np.zeros((h, w), np.uint8)
                m[y0:y1, x0:x1] = 1
                Image.fromarray(m).save(root / "masks" / f"{PurePosixPath(name).stem}.png")
    (root / "data.json").write_text(json.dumps(split))
    if boxes:
        (root / "boxes.csv").write_text("name,x_min,y_min,x_max,y_max\n" + "".join(r + "\n" for r in rows))
    return root


# --------------------------------------------------------------------------------------------
# Archive forms
# --------------------------------------------------------------------------------------------


def pack(folder: str | Path, form: str, out: str | Path | None = None, top: str | None = "dataset") -> Path:
    """Folder -> 'dir' (unchanged), 'zip', 'tar' or 'tar.gz' archive; files under `top/` if given."""
    folder = Path(folder)
    if form == "dir":
        return folder
    out = Path(out) if out else folder.parent / f"{folder.name}.{form}"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    arc = [
        (p, f"{top}/{p.relative_to(folder).as_posix()}" if top else p.relative_to(folder).as_posix())
        for p in files
    ]
    if form == "zip":
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for p, name in arc:
                zf.write(p, name)
    elif form in ("tar", "tar.gz"):
        with tarfile.open(out, "w:gz" if form == "tar.gz" else "w") as tf:
            for p, name in arc:
                tf.add(p, name)
    else:
        raise ValueError(form)
    return out


def dicom_bytes(
    pixels: np.ndarray, photometric: str = "MONOCHROME2", bits_stored: int | None = None, uid_seed: str = "1"
) -> bytes:
    """A real DICOM file (explicit VR little endian, uncompressed) holding `pixels`."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[uid_seed])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = pixels.shape
    bits = 8 if pixels.dtype == np.uint8 else 16
    ds.BitsAllocated = bits
    ds.BitsStored = bits_stored or bits
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# RSNA, VinDr and LAG raw layouts
# --------------------------------------------------------------------------------------------


class _Members:
    """Writes archive members either as files under a folder ('dir') or into a zip ('zip')."""

    def __init__(self, out: Path, form: str, top: str | None) -> None:
        self.out, self.form, self.top = Path(out), form, top
        if form == "zip":
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.zf = zipfile.ZipFile(self.out, "w", zipfile.ZIP_DEFLATED)
        elif form != "dir":
            raise ValueError(f"form must be dir or zip (use pack() for tar), got {form}")

    def write(self, rel: str, data: bytes | str) -> None:
        data = data.encode() if isinstance(data, str) else data
        if self.form == "zip":
            self.zf.writestr(f"{self.top}/{rel}" if self.top else rel, data)
        else:
            path = self.out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    def close(self) -> Path:
        if self.form == "zip":
            self.zf.close()
        return self.out


def _stem(name: str) -> str:
    return PurePosixPath(name).stem


def write_rsna_raw(
    out: str | Path,
    split: dict,
    form: str = "dir",
    size: int = 8,
    seed: int = 0,
    n_other: int = 3,
    flip: tuple[str, ...] = (),
    top: str | None = None,
) -> Path:
    """RSNA layout: stage_2_train_labels.csv, stage_2_detailed_class_info.csv, stage_2_train_images/.

    8-bit MONOCHROME2 DICOMs of size x size. Lung Opacity patients get 1-3 boxes (one CSV row each,
    and the class file repeats the patient per row, as the real one does); `n_other` patients of the
    unused class and two test images are added. Names in `flip` get the opposite class in the CSVs.
    Boxes are in pixels of the DICOM (the real DICOMs are 1024 x 1024).
    """
    rng = np.random.default_rng(seed)
    w = _Members(out, form, top)
    labels_rows, class_rows = ["patientId,x,y,width,height,Target"], ["patientId,class"]
    patients = {_stem(n): lab for n, lab in split_labels(split).items()}
    patients.update({f"other-{i:04d}": None for i in range(n_other)})
    for i, (pid, label) in enumerate(patients.items()):
        raw = label if label is None or f"{pid}.png" not in flip else 1 - label
        if raw == 1:
            for k in range(1 + i % 3):
                x, y = 1 + k, 2
                labels_rows.append(f"{pid},{x}.0,{y}.0,3.0,{2 + k}.0,1")
                class_rows.append(f"{pid},Lung Opacity")
        else:
            labels_rows.append(f"{pid},,,,,0")
            class_rows.append(f"{pid},{'Normal' if raw == 0 else 'No Lung Opacity / Not Normal'}")
        pixels = _pixels(rng, size, size, label or 0)
        w.write(f"stage_2_train_images/{pid}.dcm", dicom_bytes(pixels, uid_seed=pid))
    for i in range(2):
        w.write(
            f"stage_2_test_images/test-{i}.dcm", dicom_bytes(_pixels(rng, size, size, 0), uid_seed=f"t{i}")
        )
    w.write("stage_2_train_labels.csv", "\n".join(labels_rows) + "\n")
    w.write("stage_2_detailed_class_info.csv", "\n".join(class_rows) + "\n")
    w.write("GCP Credits Request Link - RSNA.txt", "not part of the data\n")
    return w.close()


VINDR_CLASSES = {0: "Aortic enlargement", 3: "Cardiomegaly", 11: "Pleural thickening", 14: "No finding"}


def write_vindr_raw(
    out: str | Path,
    split: dict,
    form: str = "dir",
    size: tuple[int, int] = (10, 8),
    seed: int = 0,
    flip: tuple[str, ...] = (),
    top: str | None = None,
) -> Path:
    """VinDr-CXR layout: train.csv (three radiologists per image), train/<image_id>.dicom.

    DICOMs of `size` = (columns, rows): 16-bit with 12 bits stored, or full 16-bit range, every
    third one MONOCHROME1 (stored inverted, so it decodes like its MONOCHROME2 siblings).
    Abnormal images: one or two radiologists report findings with boxes, the others "No finding".
    """
    rng = np.random.default_rng(seed)
    cols, rows = size
    w = _Members(out, form, top)
    lines = ["image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max"]
    for i, (name, label) in enumerate(split_labels(split).items()):
        iid = _stem(name)
        raw = 1 - label if name in flip else label
        for r in range(3):
            rad = f"R{(i + r) % 17 + 1}"
            if raw == 1 and r < 1 + i % 2:
                cid = (0, 3, 11)[(i + r) % 3]
                lines.append(f"{iid},{VINDR_CLASSES[cid]},{cid},{rad},1.0,2.0,{cols - 2}.5,{rows - 1}.0")
                if r == 0:  # a second finding of the same radiologist
                    lines.append(f"{iid},{VINDR_CLASSES[11]},11,{rad},0.0,0.0,2.0,3.0")
            else:
                lines.append(f"{iid},No finding,14,{rad},,,,")
        bits = 12 if i % 2 else 16
        high = 2**bits - 1
        pixels = _pixels(rng, rows, cols, label, np.uint16, high)
        mono1 = i % 3 == 0
        if mono1:
            pixels = (high - pixels).astype(np.uint16)
        w.write(
            f"train/{iid}.dicom",
            dicom_bytes(pixels, "MONOCHROME1" if mono1 else "MONOCHROME2", bits, uid_seed=iid),
        )
    w.write("test/abc.dicom", dicom_bytes(_pixels(rng, rows, cols, 0, np.uint16, 4095), uid_seed="test"))
    w.write("train.csv", "\n".join(lines) + "\n")
    w.write("sample_submission.csv", "image_id,PredictionString\nabc,14 1 0 0 1 1\n")
    return w.close()


def write_lag_raw(out: str | Path, split: dict, form: str = "dir", size: int = 16, seed: int = 0) -> Path:
    """The Med-AD copy of LAG: LAG/images/<name>.jpg + LAG/data.json (zip form: under LAG/)."""
    folder = write_medad_folder(
        Path(out) if form == "dir" else Path(out).with_suffix(""), split, (size, size), seed, False, False
    )
    return folder if form == "dir" else pack(folder, form, out, top="LAG")


# --------------------------------------------------------------------------------------------
# A local HTTP server speaking the part of the Kaggle API that downloads competition files
# --------------------------------------------------------------------------------------------


class KaggleStub:
    """Real HTTP on 127.0.0.1 (random port) for the real Kaggle client, used as a context manager.

    POST /api/v1/competitions.CompetitionApiService/DownloadDataFiles {"competitionName": SLUG}
    -> 302 to /storage/SLUG.zip, served with Content-Length, Last-Modified, ETag and byte ranges.
    `forbidden` slugs answer 403 (rules not accepted); wrong credentials 401; other paths 404.
    `cut(n, mode)`: the next `times` GETs send n body bytes, then close the connection ("close")
    or stall until `release()` ("hang"); `body_cut` is set once the bytes are out.
    """

    LAST_MODIFIED = "Mon, 01 Jan 2024 00:00:00 GMT"

    def __init__(self, files: dict[str, bytes], username: str = "tester", key: str = "secret", forbidden=()):
        import base64
        import threading

        self.files, self.forbidden = files, set(forbidden)
        self.auth = "Basic " + base64.b64encode(f"{username}:{key}".encode()).decode()
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self._cut: tuple[int, str, int] | None = None
        self.body_cut = threading.Event()
        self._release = threading.Event()
        self._lock = threading.Lock()

    def cut(self, n_bytes: int, mode: str = "close", times: int = 1) -> None:
        self._cut = (n_bytes, mode, times)

    def release(self) -> None:
        self._release.set()

    def _take_cut(self) -> tuple[int, str] | None:
        with self._lock:
            if not self._cut or self._cut[2] <= 0:
                return None
            n, mode, times = self._cut
            self._cut = (n, mode, times - 1)
            return n, mode

    def __enter__(self) -> KaggleStub:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _reply(self, code: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(code)
                for k, v in {"Content-Length": str(len(body)), **(headers or {})}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                stub.requests.append(("POST", self.path, None))
                if not self.path.endswith("/competitions.CompetitionApiService/DownloadDataFiles"):
                    return self._reply(404, b'{"code": 404}', {"Content-Type": "application/json"})
                if self.headers.get("Authorization") != stub.auth:
                    return self._reply(401, b'{"code": 401, "message": "Unauthenticated"}')
                slug = body.get("competitionName")
                if slug in stub.forbidden:
                    return self._reply(403, b'{"code": 403, "message": "You must accept the rules"}')
                if f"{slug}.zip" not in stub.files:
                    return self._reply(404, b'{"code": 404}')
                self._reply(302, b"", {"Location": f"/storage/{slug}.zip?X-Goog-Signature=abc"})

            def do_GET(self):
                name = self.path.split("?")[0].removeprefix("/storage/")
                rng = self.headers.get("Range")
                stub.requests.append(("GET", self.path, rng))
                if name not in stub.files:
                    return self._reply(404)
                data = stub.files[name]
                start = int(rng.removeprefix("bytes=").split("-")[0]) if rng else 0
                headers = {
                    "Content-Type": "application/zip",
                    "Last-Modified": stub.LAST_MODIFIED,
                    "ETag": '"v1"',
                    "Accept-Ranges": "bytes",
                }
                if start:
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                body = data[start:]
                cut = stub._take_cut()
                self.send_response(206 if start else 200)
                for k, v in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(k, v)
                self.end_headers()
                if cut is None:
                    self.wfile.write(body)
                    return
                self.wfile.write(body[: cut[0]])
                self.wfile.flush()
                stub.body_cut.set()
                if cut[1] == "hang":
                    stub._release.wait(60)
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
