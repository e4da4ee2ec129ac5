"""The taggants secret file: keys, key labels, configuration and the protected data's digest.

The file is JSON with a checksum over its content, so a truncated or edited secret is refused
with one line instead of giving a meaningless p-value. It must never be shipped with the data.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provscan import ProvscanError, atomic_write_text
from provscan.datasets import max_classes

if TYPE_CHECKING:
    import numpy as np

FORMAT = "provscan-taggants-secret"
VERSION = 1


@dataclass
class Secret:
    keys: np.ndarray  # float32 (K, C, H, W) in [0, 1]
    labels: np.ndarray  # int64 (K,)
    num_classes: int
    mode: str = "clean-label"
    config: dict[str, Any] = field(default_factory=dict)
    protected_sha256: str = ""

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.keys.shape[1:])

    def to_json(self) -> str:
        import numpy as np

        body = {
            "format": FORMAT, "version": VERSION, "mode": self.mode,
            "num_classes": int(self.num_classes), "input_shape": list(self.input_shape),
            "labels": [int(v) for v in self.labels],
            "keys": {"dtype": "float32", "shape": list(self.keys.shape),
                     "base64": base64.b64encode(np.ascontiguousarray(self.keys, "<f4").tobytes()).decode()},
            "config": self.config, "protected_sha256": self.protected_sha256,
        }
        body["checksum"] = _checksum(body)
        return json.dumps(body, indent=1, sort_keys=True) + "\n"


def _checksum(body: dict[str, Any]) -> str:
    content = {k: v for k, v in body.items() if k != "checksum"}
    return "sha256:" + hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def write_secret(secret: Secret, path: Path) -> None:
    atomic_write_text(Path(path), secret.to_json(), mode=0o600)


def read_secret(path: str | Path) -> Secret:
    """Parse and check a secret file; every problem is one :class:`ProvscanError` line."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise ProvscanError(f"taggants secret {path}: no such file")
    try:
        body = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProvscanError(f"taggants secret {path}: not valid JSON ({exc})") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ProvscanError(f"taggants secret {path}: not a {FORMAT} file")
    if body.get("version") != VERSION:
        raise ProvscanError(f"taggants secret {path}: unsupported version {body.get('version')!r}")
    if body.get("checksum") != _checksum(body):
        raise ProvscanError(f"taggants secret {path}: checksum mismatch (file corrupted or edited)")
    try:
        spec = body["keys"]
        raw = base64.b64decode(spec["base64"], validate=True)
        keys = np.frombuffer(raw, dtype="<f4").reshape(spec["shape"]).astype(np.float32)
        labels = np.asarray(body["labels"], dtype=np.int64)
        num_classes = int(body["num_classes"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ProvscanError(f"taggants secret {path}: malformed keys or labels ({exc})") from None
    if keys.ndim != 4 or len(keys) != len(labels) or len(labels) == 0:
        raise ProvscanError(f"taggants secret {path}: keys {keys.shape} do not match {len(labels)} labels")
    if not 2 <= num_classes <= max_classes():
        raise ProvscanError(f"taggants secret {path}: num_classes {num_classes} outside "
                            f"2..{max_classes()} (PROVSCAN_MAX_CLASSES)")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ProvscanError(f"taggants secret {path}: key labels outside 0..{num_classes - 1}")
    if not np.isfinite(keys).all() or keys.min() < 0 or keys.max() > 1:
        raise ProvscanError(f"taggants secret {path}: keys must be finite and lie in [0, 1]")
    return Secret(keys, labels, num_classes, str(body.get("mode", "clean-label")),
                  dict(body.get("config") or {}), str(body.get("protected_sha256", "")))
