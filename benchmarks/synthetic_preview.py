"""Preview grid of the synthetic datasets: docs/synthetic_preview.png.

For each of synth-rsna, synth-vindr and synth-lag: normal test subjects, then abnormal ones (of
varied finding kinds) with their mask outlined in red, at the render size (256 px), at the prepared
size (64 px, through the ingest's own resize chain: what the paper's networks see) and at the demo
preset's training size (32 px, resized from 64 px as the data loader does).

    python benchmarks/synthetic_preview.py [--out docs/synthetic_preview.png] [--seed 0] [--n 4]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from sagan.data.decoding import decode_mask, resize_chain  # noqa: E402
from sagan.data.loading import resize_images  # noqa: E402
from sagan.data.synthetic import DATASETS, render_subject  # noqa: E402


def _to_training_size(img: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The image and mask as `sagan prepare` stores them at `size`."""
    import io

    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(buf, format="PNG")
    return resize_chain(Image.fromarray(img), size), decode_mask(buf.getvalue(), size)[0].astype(bool)


def _varied_abnormal(name: str, seed: int, n: int, search: int = 40) -> list:
    """n abnormal test subjects, preferring ones that show a finding kind not shown yet."""
    candidates = [render_subject(name, seed, "test/1", k) for k in range(search)]
    chosen, seen = [], set()
    for sub in candidates:
        if len(chosen) < n and not set(sub.findings) <= seen:
            chosen.append(sub)
            seen.update(sub.findings)
    chosen += [s for s in candidates if all(s is not c for c in chosen)][: n - len(chosen)]
    return chosen


def _to_loader_size(img: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A prepared image and mask as the data loader resizes them for a smaller training size."""
    return resize_images(img[None], size)[0], resize_images(mask.astype(np.uint8)[None], size)[0].astype(bool)


def preview(out: Path, seed: int = 0, n: int = 4, prepared_size: int = 64, demo_size: int = 32) -> Path:
    cols, rows = 2 * n, 3
    fig, axes = plt.subplots(
        rows * len(DATASETS), cols, figsize=(1.6 * cols, 1.7 * rows * len(DATASETS)), dpi=110
    )
    for d, name in enumerate(DATASETS):
        subjects = [render_subject(name, seed, "test/0", k) for k in range(n)] + _varied_abnormal(
            name, seed, n
        )
        for c, sub in enumerate(subjects):
            small, small_mask = _to_training_size(sub.image, sub.mask, prepared_size)
            demo, demo_mask = _to_loader_size(small, small_mask, demo_size)
            for r, (img, mask, px) in enumerate(
                ((sub.image, sub.mask, 256), (small, small_mask, prepared_size), (demo, demo_mask, demo_size))
            ):
                ax = axes[rows * d + r, c]
                ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
                if mask.any():
                    ax.contour(mask.astype(float), levels=[0.5], colors="red", linewidths=0.7)
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(", ".join(sub.findings) or "normal", fontsize=7)
                if c == 0:
                    ax.set_ylabel(f"{name}\n{px} px", fontsize=8)
    fig.suptitle(
        f"synthetic datasets (seed {seed}): normal test subjects, then abnormal ones of varied kinds (mask in red)",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.985))  # room for the suptitle
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/synthetic_preview.png")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=4, help="normal and abnormal subjects per dataset")
    args = p.parse_args()
    print(preview(Path(args.out), args.seed, args.n))


if __name__ == "__main__":
    main()
