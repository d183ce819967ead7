import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imss_updater.source import serverini
from imss_updater.source.serverini import PathEscapeError, ServerIniError, parse, payload_url, signature_path

SAMPLE = """[Server]
Server.1=http://au.example/activeupdate

[PATTERN]
P.4=pattern/vsapi697.zip,1569700,41234567
P.4.MergeCount=3
P.4.Merge.1=pattern/vsapi697_696.zip,1569600,1234
P.48020000=pattern/icrc/ioth1667900.zip,1667900,21493610

[ENGINE]
E.1=VSAPI_LINUX_X86_64,engine/vsapi_linux_x64_v21001008.zip,21.0.1008,1350445,extra,fields
E.2=TMASE_LINUX_X86_64,engine/tmase.zip,8.5.1040,999

[Unknown]
Whatever=1
"""


def test_parse_reads_patterns_and_engines_and_ignores_extras() -> None:
    index = parse(SAMPLE)
    assert index.patterns["P.4"].version.display == "15.697.00"
    assert index.patterns["P.4"].size == 41234567
    assert index.patterns["P.48020000"].path == "pattern/icrc/ioth1667900.zip"
    assert index.engines["VSAPI_LINUX_X86_64"].version.display == "21.0.1008"
    assert set(index.patterns) == {"P.4", "P.48020000"}
    assert not index.problems


def test_missing_component_is_absent_not_an_error() -> None:
    index = parse(SAMPLE)
    assert index.lookup("P.8", is_engine=False) is None
    assert index.lookup("TMUFE_LINUX_X86_64", is_engine=True) is None


def test_malformed_entry_is_a_problem_for_that_component_only() -> None:
    index = parse(SAMPLE.replace("P.48020000=pattern/icrc/ioth1667900.zip,1667900,21493610",
                                 "P.48020000=pattern/icrc/ioth1667900.zip,16679xx,21493610"))
    assert "P.48020000" in index.problems
    assert "not an integer" in index.problems["P.48020000"]
    assert index.patterns["P.4"].version.raw == "1569700"


def test_truncated_entry_is_rejected_with_reason() -> None:
    index = parse("[PATTERN]\nP.4=pattern/vsapi697.zip,15697")
    assert "expected path,version,size" in index.problems["P.4"]


def test_engine_with_bad_size_is_rejected_with_reason() -> None:
    index = parse("[ENGINE]\nE.1=VSAPI_LINUX_X86_64,engine/v.zip,21.0.1008,lots\n")
    assert "size is not a number" in index.problems["VSAPI_LINUX_X86_64"]


def test_stray_lines_are_ignored() -> None:
    index = parse("[PATTERN]\nthis line has no equals sign\nP.4=p/v.zip,1569700,10\n")
    assert index.patterns["P.4"].size == 10
    assert index.ignored_lines == 1


@pytest.mark.parametrize("text", ["", "<html><body>503</body></html>", "[Server]\nServer.1=x\n"])
def test_text_that_is_not_a_server_ini_raises(text: str) -> None:
    with pytest.raises(ServerIniError):
        parse(text)


@pytest.mark.parametrize(
    "path",
    ["../x.zip", "pattern/../../x.zip", "/etc/passwd", "http://evil.example/x.zip",
     "//evil.example/x.zip", "pattern/%2e%2e/%2e%2e/x.zip", "pattern\\..\\x.zip"],
)
def test_payload_path_escaping_the_source_is_refused(path: str) -> None:
    with pytest.raises(PathEscapeError):
        payload_url("http://au.example/base", path)


def test_payload_url_joins_below_the_base() -> None:
    assert payload_url("http://au.example/base/", "pattern/v.zip") == "http://au.example/base/pattern/v.zip"
    assert signature_path("pattern/vsapi697.zip") == "pattern/vsapi697.sig"


_key = st.from_regex(r"\AP\.[0-9]{1,8}\Z")
_path = st.from_regex(r"\A[a-z]{1,8}/[a-z0-9_]{1,12}\.zip\Z")


_entry = st.tuples(_path, st.integers(0, 10**9), st.integers(0, 2**40))


@given(st.dictionaries(_key, _entry, max_size=8))
def test_parse_round_trips_generated_pattern_entries(entries: dict[str, tuple[str, int, int]]) -> None:
    lines = ["[PATTERN]"]
    lines += [f"{key}={path},{version},{size}" for key, (path, version, size) in entries.items()]
    index = parse("\n".join(lines) + "\n")
    assert set(index.patterns) == set(entries)
    for key, (path, version, size) in entries.items():
        assert index.patterns[key].path == path
        assert index.patterns[key].version.raw == str(version)
        assert index.patterns[key].size == size


@given(st.text(max_size=400))
def test_parse_never_fails_with_anything_but_server_ini_error(text: str) -> None:
    with contextlib.suppress(ServerIniError):
        serverini.parse(text)
