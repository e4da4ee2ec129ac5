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
