from hypothesis import given
from hypothesis import strategies as st

from imss_updater.versions import Version, is_newer


def test_pattern_version_displays_roll_number_and_build() -> None:
    assert Version.parse("1569700").display == "15.697.00"
    assert Version.parse("1569780").display == "15.697.80"


def test_pattern_roll_over_orders_numerically() -> None:
    assert Version.parse("299900") < Version.parse("300100")


def test_engine_versions_compare_field_by_field_not_as_strings() -> None:
    assert Version.parse("9.0.1") < Version.parse("10.0.0")
    assert Version.parse("21.0.999") < Version.parse("21.0.1008")


def test_unknown_available_is_never_newer() -> None:
    assert not is_newer(None, Version.parse("1"))
    assert is_newer(Version.parse("1"), None)


@given(st.integers(0, 10**9), st.integers(0, 10**9))
def test_pattern_order_matches_integer_order(a: int, b: int) -> None:
    assert (Version.parse(str(a)) < Version.parse(str(b))) == (a < b)
    assert (Version.parse(str(a)) == Version.parse(str(b))) == (a == b)


@given(
    st.lists(st.integers(0, 99999), min_size=2, max_size=4),
    st.lists(st.integers(0, 99999), min_size=2, max_size=4),
)
def test_engine_order_matches_tuple_order(a: list[int], b: list[int]) -> None:
    left = Version.parse(".".join(map(str, a)))
    right = Version.parse(".".join(map(str, b)))
    assert (left < right) == (tuple(a) < tuple(b))


@given(st.integers(0, 10**9))
def test_displayed_pattern_orders_like_its_integer(number: int) -> None:
    version = Version.parse(str(number))
    assert Version.parse(version.display) == version
