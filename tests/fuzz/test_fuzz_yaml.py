"""Fuzz the YAML layer: truncated files, stray characters (NUL, a lone surrogate, a BOM,
escape codes), tabs, anchors and aliases (an alias bomb), duplicate keys, collections nested
thousands deep, several documents, keys that are not strings, empty files — as text and as
bytes on disk (non-UTF-8 bytes), plus a multi-megabyte file."""

from __future__ import annotations

import time

import fuzz_strategies as F
from hypothesis import given
from hypothesis import strategies as st

from pdelang.errors import SpecError
from pdelang.compiler.spec.limits import limit
from pdelang.compiler.spec.load import load_spec, load_spec_text


@F.fuzz_settings(700)
@given(F.yaml_garbage())
def test_yaml_garbage_loads_or_fails_located(text):
    F.outcome("yaml: garbage text", lambda: load_spec_text(text, "fuzz.yaml"))


@F.fuzz_settings(300)
@given(st.sampled_from(sorted(F.SPEC_TEXTS)), st.data())
def test_bytes_on_disk_load_or_fail_located(tmp_path, name, data):
    """Bytes edited into a shipped spec file: invalid UTF-8, NUL, a BOM, CR line ends."""
    raw = F.SPEC_TEXTS[name].encode("utf-8")
    kind = data.draw(st.sampled_from(["bytes", "insert", "crlf", "bom", "latin1", "cut"]))
    if kind == "bytes":
        raw = data.draw(st.binary(max_size=200))
    elif kind == "insert":
        i = data.draw(st.integers(0, len(raw)))
        raw = raw[:i] + data.draw(st.sampled_from([b"\xff", b"\xc3", b"\xe2\x80", b"\x00",
                                                   b"\xed\xa0\x80", b"\r", b"\x1b"])) + raw[i:]
    elif kind == "crlf":
        raw = raw.replace(b"\n", b"\r\n")
    elif kind == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif kind == "latin1":
        raw = F.SPEC_TEXTS[name].replace("name:", "name: é #", 1).encode("latin-1", "replace")
    else:
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(raw)
    F.outcome("yaml: bytes on disk", lambda path=path: load_spec(path))


def test_multi_megabyte_files_are_refused_before_parsing(tmp_path):
    """A 5 MB spec (a long description, or a long term) is refused by its size, fast."""
    for name, filler in (("description", "description: " + "x" * 5_000_000 + "\n"),
                         ("term", "terms:\n  big: " + "u + " * 1_250_000 + "u\n")):
        path = tmp_path / f"{name}.yaml"
        path.write_text(F.SPEC_TEXTS["heat1d"] + filler)
        started = time.perf_counter()
        error = F.outcome("yaml: huge files", lambda path=path: load_spec(path))
        assert error is None
        assert time.perf_counter() - started < 1.0
        text = path.read_text()
        started = time.perf_counter()
        F.outcome("yaml: huge files", lambda text=text: load_spec_text(text, "big.yaml"))
        assert time.perf_counter() - started < 1.0


def test_the_size_limit_is_the_documented_one_and_can_be_raised(tmp_path, monkeypatch):
    text = F.SPEC_TEXTS["heat1d"]
    padded = text + "#" * (limit("spec_bytes") - len(text.encode()) - 1) + "\n"
    path = tmp_path / "padded.yaml"
    path.write_text(padded)
    load_spec(path)  # exactly at the limit: fine
    path.write_text(padded + "#\n")
    with F.time_limit():
        try:
            load_spec(path)
        except SpecError as error:
            F.check_error(error)
            assert "PDELANG_MAX_SPEC_BYTES" in error.suggestion
        else:
            raise AssertionError("a spec over the size limit loaded")
    monkeypatch.setenv("PDELANG_MAX_SPEC_BYTES", str(2 * len(padded)))
    load_spec(path)
