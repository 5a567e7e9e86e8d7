"""server.properties parsing: java.util.Properties' rules."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from broker.config import PropertiesSyntaxError, parse_properties


def test_separators_and_whitespace():
    text = "a=1\nb: 2\nc 3\n  d  =  4\ne\t\t5\nf = = 6\ng:=7\n"
    assert parse_properties(text) == {"a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "= 6", "g": "=7"}


def test_comments_and_blank_lines():
    text = "# comment\n   ! also a comment\n\n \t \nkey=value # not a comment\n"
    assert parse_properties(text) == {"key": "value # not a comment"}


def test_key_without_value():
    assert parse_properties("lonely\nother=\nthird :\n") == {"lonely": "", "other": "", "third": ""}


def test_trailing_whitespace_of_a_value_is_kept():
    assert parse_properties("k = v  \n") == {"k": "v  "}


def test_line_continuation():
    text = "listeners=PLAINTEXT://:9092,\\\n          INTERNAL://:9093\nnext=1\n"
    assert parse_properties(text) == {"listeners": "PLAINTEXT://:9092,INTERNAL://:9093", "next": "1"}


def test_continuation_of_a_continuation_and_at_end_of_text():
    assert parse_properties("k=a\\\n b\\\n  c\\") == {"k": "abc"}


def test_even_backslashes_do_not_continue():
    assert parse_properties("k=a\\\\\nn=1") == {"k": "a\\", "n": "1"}


def test_a_comment_line_does_not_continue():
    assert parse_properties("# comment \\\nk=v\n") == {"k": "v"}


def test_continued_line_starting_with_hash_is_not_a_comment():
    assert parse_properties("k=a\\\n  #b\n") == {"k": "a#b"}


def test_escapes():
    text = "tab=a\\tb\nnl=a\\nb\nbs=a\\\\b\nuni=\\u00e9t\\u00E9\nother=\\q\\ lead\n"
    assert parse_properties(text) == {"tab": "a\tb", "nl": "a\nb", "bs": "a\\b", "uni": "été", "other": "q lead"}


def test_escaped_separators_in_keys():
    assert parse_properties("a\\=b=c\nx\\:y:z\nsp\\ ace = v\n") == {"a=b": "c", "x:y": "z", "sp ace": "v"}


def test_surrogate_pairs_join():
    assert parse_properties("k=\\uD83D\\uDE00") == {"k": "\U0001F600"}


def test_line_endings():
    assert parse_properties("a=1\r\nb=2\rc=3\n") == {"a": "1", "b": "2", "c": "3"}


def test_last_duplicate_wins():
    assert parse_properties("k=1\nk=2\n") == {"k": "2"}


def test_malformed_unicode_escape_names_the_line():
    with pytest.raises(PropertiesSyntaxError, match=r"line 3: malformed \\uXXXX"):
        parse_properties("a=1\n\nb=\\u12G4\n")


_PLAIN = st.text(st.characters(whitelist_categories=("L", "N"), whitelist_characters=".-_/"), min_size=1)


@given(st.dictionaries(_PLAIN, _PLAIN))
def test_plain_pairs_round_trip(pairs):
    text = "".join(f"{k}={v}\n" for k, v in pairs.items())
    assert parse_properties(text) == pairs
