"""Typed parsing and formatting of config values, and the key tables' invariants."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, strategies as st

from broker.config import BROKER_KEYS, TOPIC_KEYS, ConfigDef, ConfigType, InvalidConfigError, Secret
from broker.config.broker_config import env_var_name
from broker.config.broker_keys import SYNONYM_GROUPS, synonym_group
from broker.config.keys import format_value, parse_value
from broker.config.validators import AtLeast

T = ConfigType


def roundtrip(type_: ConfigType, value):
    return parse_value(type_, format_value(type_, value))


@given(st.booleans())
def test_boolean_roundtrip(value):
    assert roundtrip(T.BOOLEAN, value) is value


@pytest.mark.parametrize("text,value", [("true", True), ("TRUE", True), (" False ", False), ("fAlSe", False)])
def test_boolean_is_case_insensitive_and_trimmed(text, value):
    assert parse_value(T.BOOLEAN, text) is value


@pytest.mark.parametrize("text", ["yes", "1", "", "t"])
def test_boolean_rejects_other_words(text):
    with pytest.raises(ValueError, match="true or false"):
        parse_value(T.BOOLEAN, text)


@given(st.integers(-(1 << 15), (1 << 15) - 1))
def test_short_roundtrip(value):
    assert roundtrip(T.SHORT, value) == value


@given(st.integers(-(1 << 31), (1 << 31) - 1))
def test_int_roundtrip(value):
    assert roundtrip(T.INT, value) == value


@given(st.integers(-(1 << 63), (1 << 63) - 1))
def test_long_roundtrip(value):
    assert roundtrip(T.LONG, value) == value


@pytest.mark.parametrize("type_,text", [
    (T.SHORT, "32768"), (T.SHORT, "-32769"),
    (T.INT, "2147483648"), (T.INT, "-2147483649"),
    (T.LONG, "9223372036854775808"), (T.LONG, "-9223372036854775809"),
])
def test_integers_are_range_checked(type_, text):
    with pytest.raises(ValueError, match="out of range"):
        parse_value(type_, text)


@pytest.mark.parametrize("text", ["1.5", "1e3", "1_000", "0x10", "", "ten", "١٢"])
def test_integers_are_plain_decimal(text):
    with pytest.raises(ValueError, match="whole number"):
        parse_value(T.LONG, text)


def test_integers_accept_sign_and_whitespace():
    assert parse_value(T.INT, " +42 ") == 42
    assert parse_value(T.INT, "-7") == -7


@given(st.floats(allow_nan=False))
def test_double_roundtrip(value):
    assert roundtrip(T.DOUBLE, value) == value


def test_double_java_words():
    assert math.isnan(roundtrip(T.DOUBLE, math.nan))
    assert format_value(T.DOUBLE, math.inf) == "Infinity"
    assert parse_value(T.DOUBLE, "-Infinity") == -math.inf
    assert format_value(T.DOUBLE, 1.0) == "1.0"
    with pytest.raises(ValueError):
        parse_value(T.DOUBLE, "1_0")


_ITEM = st.text(st.characters(blacklist_characters=",", blacklist_categories=("Cs",)), min_size=1).map(
    str.strip).filter(bool)


@given(st.lists(_ITEM).map(tuple))
def test_list_roundtrip(items):
    assert roundtrip(T.LIST, items) == items


def test_list_parsing():
    assert parse_value(T.LIST, "") == ()
    assert parse_value(T.LIST, "  ") == ()
    assert parse_value(T.LIST, " a , b,c ") == ("a", "b", "c")
    with pytest.raises(ValueError, match="empty element"):
        parse_value(T.LIST, "a,,b")
    with pytest.raises(ValueError, match="empty element"):
        parse_value(T.LIST, "a,")


_STRING = st.text(st.characters(blacklist_categories=("Cs",))).map(str.strip)


@given(_STRING)
def test_string_and_class_roundtrip(text):
    assert roundtrip(T.STRING, text) == text
    assert roundtrip(T.CLASS, text) == text


@given(_STRING)
def test_password_roundtrip_and_never_shown(text):
    secret = roundtrip(T.PASSWORD, Secret(text))
    assert secret == Secret(text)
    assert repr(secret) == str(secret) == "Secret([hidden])"


def test_none_formats_as_none():
    for type_ in ConfigType:
        assert format_value(type_, None) is None


def test_config_type_ids_are_kafkas():
    assert [(t.name, t.value) for t in ConfigType] == [
        ("BOOLEAN", 1), ("STRING", 2), ("INT", 3), ("SHORT", 4), ("LONG", 5),
        ("DOUBLE", 6), ("LIST", 7), ("CLASS", 8), ("PASSWORD", 9)]


def test_invalid_config_error_names_key_value_and_reason():
    key = ConfigDef("retention.ms", T.LONG, 1, "doc", validator=AtLeast(-1))
    with pytest.raises(InvalidConfigError) as info:
        key.parse("-5")
    err = info.value
    assert (err.key, err.value, err.reason) == ("retention.ms", "-5", "must be >= -1")
    assert str(err) == "retention.ms: -5 is not valid: must be >= -1"
    assert isinstance(err, ValueError)


def test_type_error_names_key():
    key = ConfigDef("segment.bytes", T.INT, 14, "doc")
    with pytest.raises(InvalidConfigError, match=r"^segment.bytes: lots is not valid: expected a whole number"):
        key.parse("lots")


def test_sensitive_values_are_hidden_in_errors():
    key = ConfigDef("s", T.PASSWORD, None, "doc", validator=lambda v: "too short", sensitive=True)
    with pytest.raises(InvalidConfigError) as info:
        key.parse("hunter2")
    assert "hunter2" not in str(info.value) and "[hidden]" in str(info.value)


def test_definition_checks():
    with pytest.raises(ValueError, match="must be sensitive"):
        ConfigDef("p", T.PASSWORD, None, "doc")
    with pytest.raises(InvalidConfigError, match="must be >= 0"):
        ConfigDef("n", T.INT, -1, "doc", validator=AtLeast(0))


ALL_KEYS = [*BROKER_KEYS.values(), *TOPIC_KEYS.values()]


@pytest.mark.parametrize("key", ALL_KEYS, ids=lambda k: k.name)
def test_every_key_is_documented_and_its_default_round_trips(key):
    assert key.doc and key.doc[0].isupper() and key.doc.endswith(".")
    if key.type is ConfigType.PASSWORD:
        assert key.sensitive
    if key.default is not None:
        assert key.parse(key.format(key.default)) == key.default


def test_topic_synonyms_are_broker_keys_leading_their_group():
    for key in TOPIC_KEYS.values():
        if key.synonym is not None:
            assert key.synonym in BROKER_KEYS, key.name
            assert synonym_group(key.synonym).leader == key.synonym, key.name


def test_synonym_groups_name_broker_keys_with_a_default_somewhere():
    for group in SYNONYM_GROUPS.values():
        assert all(name in BROKER_KEYS for name in group.names)
        assert any(BROKER_KEYS[name].default is not None for name in group.names)


def test_environment_names_are_unique_and_map_back():
    names = {env_var_name(k) for k in BROKER_KEYS}
    assert len(names) == len(BROKER_KEYS)
    assert not any("_" in k for k in BROKER_KEYS)
    assert env_var_name("log.dirs") == "TIERBROKER_LOG_DIRS"


def test_broker_keys_are_read_only_topic_keys_alterable():
    assert all(k.read_only for k in BROKER_KEYS.values())
    assert not any(k.read_only for k in TOPIC_KEYS.values())
