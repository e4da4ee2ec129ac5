"""models:/ URIs: parsing, registry URI without credentials, the download cap setting."""

from __future__ import annotations

import pytest
from provscan_mlflow.location import (
    DEFAULT_MAX_BYTES,
    ModelRef,
    max_bytes,
    parse_models_uri,
    public_uri,
    tracking_uri,
)

from provscan.errors import ProvscanError
from provscan.targets.base import OpenOptions


@pytest.mark.parametrize("uri,ref", [
    ("models:/clf/3", ModelRef("clf", version="3")),
    ("models:/my-model.v2/12", ModelRef("my-model.v2", version="12")),
    ("models:/clf@champion", ModelRef("clf", alias="champion")),
    ("models:/team model@prod_2", ModelRef("team model", alias="prod_2")),
])
def test_parse(uri, ref):
    assert parse_models_uri(uri) == ref
    assert str(ref) == uri


@pytest.mark.parametrize("uri", ["models:/clf", "models:/clf/", "models:/clf/0", "models:/clf/Production",
                                 "models:/clf/-1", "models:/@alias", "models:/clf@", "models:/clf@a/b",
                                 "models://host/clf/1", "models:/a/b/1", "models:/clf/1 ", "runs:/x/model",
                                 "models:/clf@al ias"])
def test_parse_rejects(uri):
    with pytest.raises(ProvscanError):
        parse_models_uri(uri)


def test_public_uri_drops_credentials():
    assert public_uri("https://user:tok@mlflow.example.com:5000/base?x=1#f") == "https://mlflow.example.com:5000/base"
    assert public_uri("postgresql://u:p@db/mlflow") == "postgresql://db/mlflow"
    assert public_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert public_uri("runs:/abc/model") == "runs:/abc/model"
    assert public_uri("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"


def test_tracking_uri_from_option_or_environment(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ProvscanError, match="MLFLOW_TRACKING_URI"):
        tracking_uri(OpenOptions())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert tracking_uri(OpenOptions()) == "http://env:5000"
    assert tracking_uri(OpenOptions(extra={"mlflow.tracking_uri": "http://opt:5000"})) == "http://opt:5000"


def test_max_bytes(monkeypatch):
    monkeypatch.delenv("PROVSCAN_MLFLOW_MAX_BYTES", raising=False)
    assert max_bytes(OpenOptions()) == DEFAULT_MAX_BYTES
    assert max_bytes(OpenOptions(extra={"mlflow.max_bytes": 1000})) == 1000
    monkeypatch.setenv("PROVSCAN_MLFLOW_MAX_BYTES", "nope")
    with pytest.raises(ProvscanError):
        max_bytes(OpenOptions())


class _Repo:
    """An artifact repository stand-in: ``list_artifacts(prefix)`` from a dict."""

    def __init__(self, tree: dict[str | None, list[tuple[str, bool, int | None]]]) -> None:
        self.tree = tree

    def list_artifacts(self, prefix):
        from mlflow.entities import FileInfo

        return [FileInfo(path, is_dir, size) for path, is_dir, size in self.tree.get(prefix, [])]


def test_list_files_walks_directories():
    from provscan_mlflow.location import list_files

    repo = _Repo({None: [("model.safetensors", False, 10), ("tok", True, None)],
                  "tok": [("tok/vocab.txt", False, 3)]})
    assert list_files(repo, 100) == [("model.safetensors", 10), ("tok/vocab.txt", 3)]


@pytest.mark.parametrize("path", ["../etc/passwd", "/abs", "a/../../b", "a//b", "a\\b", "./x"])
def test_list_files_refuses_unsafe_paths(path):
    from provscan_mlflow.location import list_files

    with pytest.raises(ProvscanError, match="unsafe path"):
        list_files(_Repo({None: [(path, False, 1)]}), 100)


def test_list_files_caps_the_count():
    from provscan_mlflow.location import list_files

    repo = _Repo({None: [(f"f{i}", False, 1) for i in range(20)]})
    with pytest.raises(ProvscanError, match="more than 5"):
        list_files(repo, 5)
