"""The library entry point: scan a checkpoint, judge it, sign a certificate, write reports.

``verify(...)`` is what ``provscan verify`` and the demos call. Every input is checked before
anything runs (unknown detector, malformed parameter, missing or undecryptable key, malformed
policy, unknown format, existing output): a bad input raises :class:`ProvscanError` and nothing
is written. Outputs go to ``out`` atomically (a temporary directory renamed at the end)::

    out/certificate.intoto.json   DSSE envelope (only with ``sign``)
    out/report.txt | report.json | report.sarif | report.html   one per format
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from provscan.certificate import CERT_NAME, build_statement, sign_statement
from provscan.errors import ProvscanError
from provscan.fsutil import atomic_dir, atomic_write_bytes
from provscan.keys import load_private_key
from provscan.params import parse_param_options
from provscan.plugins import Host, get_host
from provscan.policy import Policy, load_policy
from provscan.scan import Scan, ScanResult, run_scan
from provscan.targets.base import OpenOptions

DEFAULT_CERT = Path("provscan-certificate.intoto.json")


def _params(params: Mapping[str, Mapping[str, Any]] | Iterable[str] | None) -> dict[str, dict[str, Any]]:
    if params is None:
        return {}
    if isinstance(params, Mapping):
        return {k: dict(v) for k, v in params.items()}
    return parse_param_options(list(params))


def _check_out(out: Path | None) -> bool:
    """True when ``out`` exists as an empty directory (then it is replaced)."""
    if out is None:
        return False
    if out.exists():
        if out.is_dir() and not any(out.iterdir()):
            return True
        raise ProvscanError(f"output {out} already exists (choose another --out)")
    return False


def verify(location: str | Path, detectors: Iterable[str] = (),
           params: Mapping[str, Mapping[str, Any]] | Iterable[str] | None = None, seed: int = 0,
           policy: Policy | str | Path | None = None, sign: str | Path | Iterable[str | Path] | None = None,
           out: str | Path | None = None, formats: Iterable[str] = ("text",),
           options: OpenOptions | None = None, passphrase: str | None = None,
           host: Host | None = None, prompt: Callable[[str], str] | None = None) -> ScanResult:
    """Scan ``location``, apply ``policy``, sign with ``sign`` (key names or paths) and write
    the certificate and the reports into ``out``. Returns the result; ``result.certificate`` holds
    the envelope bytes and ``result.outputs`` the written paths."""
    host = host or get_host()
    pol = policy if isinstance(policy, Policy) else load_policy(policy, host)
    fmts = list(dict.fromkeys(formats))
    reporters = host.reporters()
    for fmt in fmts:
        if fmt not in reporters:
            raise ProvscanError(f"unknown format {fmt!r} (known: {', '.join(sorted(reporters))})")
    sign_list = [] if sign is None else [sign] if isinstance(sign, str | Path) else list(sign)
    keys = [load_private_key(s, passphrase, prompt) for s in sign_list]
    out_path = None if out is None else Path(out)
    replace = _check_out(out_path)
    if out_path is None and keys and DEFAULT_CERT.exists():
        raise ProvscanError(f"{DEFAULT_CERT} already exists (use --out DIR)")
    scan = Scan(str(location), list(detectors), _params(params), seed, pol.open_options(options or OpenOptions()), pol)
    result = run_scan(host, scan)
    result.certificate = sign_statement(build_statement(result), keys) if keys else None
    rendered = {fmt: (reporters[fmt].suffix, reporters[fmt]().render(result)) for fmt in fmts}
    if out_path is not None:
        with atomic_dir(out_path, overwrite=replace) as tmp:
            umask = os.umask(0)
            os.umask(umask)
            tmp.chmod(0o777 & ~umask)
            if result.certificate is not None:
                atomic_write_bytes(tmp / CERT_NAME, result.certificate)
            for suffix, data in rendered.values():
                atomic_write_bytes(tmp / f"report{suffix}", data)
        names = ([CERT_NAME] if result.certificate is not None else []) + [
            f"report{s}" for s, _ in rendered.values()]
        result.outputs = {n: out_path / n for n in names}
    elif result.certificate is not None:
        atomic_write_bytes(DEFAULT_CERT, result.certificate)
        result.outputs = {CERT_NAME: DEFAULT_CERT}
    result.rendered = {fmt: data for fmt, (_, data) in rendered.items()}
    return result
