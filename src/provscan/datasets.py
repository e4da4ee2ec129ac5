"""Image datasets as injectors and detectors see them.

In memory a dataset is ``x``: float32 ``(N, C, H, W)`` with values in [0, 1], and ``y``: int64
``(N,)``. On disk provscan reads and writes two layouts:

- ``.npz`` with arrays ``x`` and ``y`` (``x`` as uint8 0..255 or float in [0, 1]; ``(N, H, W)``,
  ``(N, H, W, C)`` or ``(N, C, H, W)``); written back in the dtype and layout it was read in.
- an image-folder tree ``ROOT/<class>/<name>.png`` (classes sorted by name, as torchvision does).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from provscan.errors import ProvscanError
from provscan.fsutil import atomic_dir, atomic_write_bytes

if TYPE_CHECKING:
    import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


@dataclass
class ImageDataset:
    x: np.ndarray
    y: np.ndarray
    classes: list[str] = field(default_factory=list)
    storage: str = "npz-float"  # npz-float | npz-uint8 | folder
    layout: str = "NCHW"  # layout of x in the npz: NCHW | NHWC | NHW
    names: list[str] = field(default_factory=list)  # file names for folder datasets

    def __post_init__(self) -> None:
        if self.x.ndim != 4:
            raise ProvscanError(f"images must be (N, C, H, W), got shape {self.x.shape}")
        if len(self.x) != len(self.y):
            raise ProvscanError(f"x has {len(self.x)} samples but y has {len(self.y)}")
        if not self.classes:
            self.classes = [str(i) for i in range(int(self.y.max()) + 1 if len(self.y) else 0)]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])  # type: ignore[return-value]

    def replace(self, x: np.ndarray | None = None, y: np.ndarray | None = None) -> ImageDataset:
        return ImageDataset(self.x if x is None else x, self.y if y is None else y,
                            list(self.classes), self.storage, self.layout, list(self.names))


def load_dataset(path: Path) -> ImageDataset:
    """Read an ``.npz`` file or an image-folder tree; errors name the problem."""
    path = Path(path)
    if not path.exists():
        raise ProvscanError(f"no such dataset: {path}")
    if path.is_dir():
        return _load_folder(path)
    if path.suffix == ".npz":
        return _load_npz(path)
    raise ProvscanError(f"{path}: unsupported dataset format (expected .npz or an image folder)")


def save_dataset(ds: ImageDataset, out: Path, overwrite: bool = False) -> None:
    """Write ``ds`` in its storage format, atomically (temp + rename)."""
    import numpy as np

    out = Path(out)
    if ds.storage == "folder":
        _save_folder(ds, out, overwrite)
        return
    if out.exists() and not overwrite:
        raise ProvscanError(f"output {out} already exists (choose another --out)")
    x = np.clip(ds.x, 0.0, 1.0)
    if ds.storage == "npz-uint8":
        x = np.rint(x * 255.0).astype(np.uint8)
    else:
        x = x.astype(np.float32)
    if ds.layout == "NHWC":
        x = x.transpose(0, 2, 3, 1)
    elif ds.layout == "NHW":
        x = x[:, 0]
    buf = io.BytesIO()
    np.savez(buf, x=x, y=ds.y.astype(np.int64))
    atomic_write_bytes(out, buf.getvalue())


def quantize_like(ds: ImageDataset, x: np.ndarray) -> np.ndarray:
    """What ``x`` becomes after a save/load round trip in ``ds``'s storage format."""
    import numpy as np

    x = np.clip(x, 0.0, 1.0).astype(np.float32)
    if ds.storage in ("npz-uint8", "folder"):
        x = np.rint(x * 255.0).astype(np.float32) / 255.0
    return x


def digits_dataset() -> ImageDataset:
    """scikit-learn's bundled 8x8 digits (1797 images, 10 classes), scaled to [0, 1]."""
    import numpy as np
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    return ImageDataset(x, d.target.astype(np.int64), [str(i) for i in range(10)], "npz-float", "NCHW")


def split(ds: ImageDataset, test_fraction: float, seed: int) -> tuple[ImageDataset, ImageDataset]:
    """A stratified-enough random split (fixed seed)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(ds.y))
    n_test = int(round(len(perm) * test_fraction))
    te, tr = perm[:n_test], perm[n_test:]
    return ds.replace(ds.x[tr], ds.y[tr]), ds.replace(ds.x[te], ds.y[te])


def _load_npz(path: Path) -> ImageDataset:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            if "x" not in z or "y" not in z:
                raise ProvscanError(f"{path}: expected arrays 'x' and 'y', found {sorted(z.files)}")
            x, y = z["x"], z["y"]
    except (OSError, ValueError) as exc:
        raise ProvscanError(f"{path}: not a readable .npz file ({exc})") from None
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ProvscanError(f"{path}: y must be a 1-D integer array, got {y.dtype} {y.shape}")
    if len(y) and y.min() < 0:
        raise ProvscanError(f"{path}: labels must be non-negative")
    storage = "npz-uint8" if x.dtype == np.uint8 else "npz-float"
    xf = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    if x.ndim == 3:
        layout, xf = "NHW", xf[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        layout, xf = "NHWC", xf.transpose(0, 3, 1, 2)
    elif x.ndim == 4:
        layout = "NCHW"
    else:
        raise ProvscanError(f"{path}: x must be (N, H, W), (N, H, W, C) or (N, C, H, W), got {x.shape}")
    if len(xf) != len(y):
        raise ProvscanError(f"{path}: x has {len(xf)} samples but y has {len(y)}")
    if storage == "npz-float" and len(xf) and (np.nanmin(xf) < 0 or np.nanmax(xf) > 1 or np.isnan(xf).any()):
        raise ProvscanError(f"{path}: float images must lie in [0, 1]")
    return ImageDataset(np.ascontiguousarray(xf), y.astype(np.int64), [], storage, layout)


def _load_folder(path: Path) -> ImageDataset:
    import numpy as np
    from PIL import Image

    classes = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ProvscanError(f"{path}: an image folder needs one sub-folder per class")
    xs, ys, names = [], [], []
    shape = None
    for ci, cname in enumerate(classes):
        for f in sorted((path / cname).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(f) as im:
                    arr = np.asarray(im.convert("L") if im.mode in ("L", "1", "P", "I") else im.convert("RGB"))
            except OSError as exc:
                raise ProvscanError(f"{f}: unreadable image ({exc})") from None
            arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
            if shape is None:
                shape = arr.shape
            elif arr.shape != shape:
                raise ProvscanError(f"{f}: shape {arr.shape} differs from {shape}")
            xs.append(arr)
            ys.append(ci)
            names.append(f"{cname}/{f.name}")
    if not xs:
        raise ProvscanError(f"{path}: no images found")
    x = np.stack(xs).astype(np.float32) / 255.0
    return ImageDataset(x, np.asarray(ys, dtype=np.int64), classes, "folder", "NCHW", names)


def _save_folder(ds: ImageDataset, out: Path, overwrite: bool) -> None:
    import numpy as np
    from PIL import Image

    names = ds.names or [f"{ds.classes[int(c)]}/{i:06d}.png" for i, c in enumerate(ds.y)]
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for cname in ds.classes:
            (tmp / cname).mkdir(parents=True, exist_ok=True)
        for img, name, label in zip(ds.x, names, ds.y):
            cls = ds.classes[int(label)]
            target = tmp / cls / Path(name).with_suffix(".png").name
            arr = np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8)
            pil = Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))
            pil.save(target, format="PNG")
