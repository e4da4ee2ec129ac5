"""Image datasets as injectors and detectors see them.

In memory a dataset is ``x``: float32 ``(N, C, H, W)`` with values in [0, 1], and ``y``: int64
``(N,)``. On disk provscan reads and writes two layouts:

- ``.npz`` with arrays ``x`` and ``y`` (``x`` as uint8 0..255 or float in [0, 1]; ``(N, H, W)``,
  ``(N, H, W, C)`` or ``(N, C, H, W)``); written back in the dtype and layout it was read in.
- an image-folder tree ``ROOT/<class>/<name>.png`` (classes sorted by name, as torchvision does).

Inputs are checked before anything large is allocated: labels must be the dense range 0..K-1
(every class present) with K at most :func:`max_classes` (``PROVSCAN_MAX_CLASSES``, default
100 000), image values finite and in [0, 1], and the arrays an ``.npz`` declares at most
:func:`max_dataset_bytes` (``PROVSCAN_MAX_DATASET_BYTES``, default 4 GiB) once decoded, checked
from their headers before they are read.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from provscan.errors import ProvscanError
from provscan.fsutil import atomic_dir, atomic_write_bytes

if TYPE_CHECKING:
    import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
DEFAULT_MAX_CLASSES = 100_000
DEFAULT_MAX_DATASET_BYTES = 4 * 1024**3


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ProvscanError(f"{name}={raw!r}: expected a positive integer") from None
    if value < 1:
        raise ProvscanError(f"{name}={raw!r}: expected a positive integer")
    return value


def max_classes() -> int:
    """Largest number of classes a dataset or secret may declare (``PROVSCAN_MAX_CLASSES``)."""
    return _env_int("PROVSCAN_MAX_CLASSES", DEFAULT_MAX_CLASSES)


def max_dataset_bytes() -> int:
    """Largest decoded size of a dataset's arrays (``PROVSCAN_MAX_DATASET_BYTES``)."""
    return _env_int("PROVSCAN_MAX_DATASET_BYTES", DEFAULT_MAX_DATASET_BYTES)


def check_labels(y: np.ndarray, where: str, num_classes: int | None = None,
                 dense: bool = True) -> int:
    """The number of classes K of labels ``y``; refuses (one line) labels that are not integers in
    0..K-1, K above :func:`max_classes`, or, with ``dense``, a class in 0..K-1 with no sample."""
    import numpy as np

    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ProvscanError(f"{where}: labels must be a 1-D integer array, got {y.dtype} {y.shape}")
    if not len(y):
        return num_classes or 0
    low, high = int(y.min()), int(y.max())
    if low < 0:
        raise ProvscanError(f"{where}: labels must be non-negative, got {low}")
    k = num_classes if num_classes is not None else high + 1
    if k > max_classes():
        raise ProvscanError(f"{where}: {k} classes is more than the limit of {max_classes()} "
                            f"(PROVSCAN_MAX_CLASSES)")
    if high >= k:
        raise ProvscanError(f"{where}: label {high} is outside 0..{k - 1}")
    if dense:
        missing = np.flatnonzero(np.bincount(y, minlength=k) == 0)
        if len(missing):
            raise ProvscanError(f"{where}: labels must be the dense range 0..{k - 1}, but class "
                                f"{int(missing[0])} has no sample ({len(missing)} classes missing)")
    return k


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
        k = check_labels(self.y, "dataset", len(self.classes) or None, dense=False)
        if not self.classes:
            self.classes = [str(i) for i in range(k)]

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


def _declared_bytes(path: Path) -> int:
    """Decoded size of the ``x`` and ``y`` arrays of an npz, from their headers (nothing loaded)."""
    import zipfile

    import numpy as np

    total = 0
    try:
        with zipfile.ZipFile(path) as zf:
            for name in ("x.npy", "y.npy"):
                if name not in zf.namelist():
                    continue
                with zf.open(name) as f:
                    fmt = np.lib.format
                    version = fmt.read_magic(f)
                    read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                    shape, _, dtype = read(f)
                count = 1
                for dim in shape:
                    count *= int(dim)
                total += count * np.dtype(dtype).itemsize
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ProvscanError(f"{path}: not a readable .npz file ({exc})") from None
    return total


def _load_npz(path: Path) -> ImageDataset:
    import numpy as np

    declared = _declared_bytes(path)
    if declared > max_dataset_bytes():
        raise ProvscanError(f"{path}: its arrays would take {declared} bytes, more than the limit of "
                            f"{max_dataset_bytes()} (PROVSCAN_MAX_DATASET_BYTES)")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "x" not in z or "y" not in z:
                raise ProvscanError(f"{path}: expected arrays 'x' and 'y', found {sorted(z.files)}")
            y = z["y"]
            check_labels(y, str(path))
            x = z["x"]
    except (OSError, ValueError, EOFError) as exc:
        raise ProvscanError(f"{path}: not a readable .npz file ({exc})") from None
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise ProvscanError(f"{path}: x must be uint8 or float, got {x.dtype}")
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
    if storage == "npz-float" and xf.size and (not np.isfinite(xf).all() or xf.min() < 0 or xf.max() > 1):
        raise ProvscanError(f"{path}: float images must be finite and lie in [0, 1]")
    return ImageDataset(np.ascontiguousarray(xf), y.astype(np.int64), [], storage, layout)


def _load_folder(path: Path) -> ImageDataset:
    import numpy as np
    from PIL import Image

    classes = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ProvscanError(f"{path}: an image folder needs one sub-folder per class")
    if len(classes) > max_classes():
        raise ProvscanError(f"{path}: {len(classes)} class folders is more than the limit of "
                            f"{max_classes()} (PROVSCAN_MAX_CLASSES)")
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
