"""Wire values per SPEC §1."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.protocol import format_decimal
from app.protocol.numbers import (
    InvalidValue,
    account_id,
    count,
    decimal,
    non_negative,
    nonzero,
    order_id,
    positive,
    symbol,
)


def rejection(validator, raw, name="amount") -> str:
    with pytest.raises(InvalidValue) as caught:
        validator(raw, name)
    return str(caught.value)


def test_account_id_is_kept_as_exact_text():
    assert account_id("007", "account id") == "007"
    assert account_id("7", "account id") == "7"


def test_account_id_of_64_digits_is_accepted():
    assert account_id("9" * 64, "account id") == "9" * 64


def test_account_id_longer_than_64_digits_is_rejected():
    assert "must be 1 to 64 ASCII digits" in rejection(account_id, "1" * 65, "account id")


def test_account_id_with_non_ascii_digits_is_rejected():
    assert "malformed account id" in rejection(account_id, "١٢٣", "account id")


def test_account_id_with_sign_is_rejected():
    assert "malformed account id" in rejection(account_id, "-1", "account id")


def test_surrounding_whitespace_is_ignored():
    assert account_id(" \t12\r\n", "account id") == "12"
    assert symbol("  SPY ", "symbol") == "SPY"
    assert decimal("\n1.5 ", "amount") == Decimal("1.5")


def test_non_ascii_whitespace_is_not_stripped():
    assert "malformed" in rejection(account_id, "\u00a012", "account id")


def test_missing_value_names_the_attribute():
    assert rejection(decimal, None, "limit") == "missing limit"


def test_empty_value_is_rejected():
    assert rejection(decimal, "  ", "balance") == "balance is empty"


def test_symbol_is_case_sensitive():
    assert symbol("Spy", "symbol") == "Spy"


def test_symbol_longer_than_32_characters_is_rejected():
    assert symbol("A" * 32, "symbol") == "A" * 32
    assert "1 to 32 ASCII letters and digits" in rejection(symbol, "A" * 33, "symbol")


def test_symbol_with_punctuation_is_rejected():
    assert "malformed symbol 'BRK.B'" in rejection(symbol, "BRK.B", "symbol")


def test_symbol_with_non_ascii_letters_is_rejected():
    assert "malformed symbol" in rejection(symbol, "ÄPFEL", "symbol")


@pytest.mark.parametrize(
    "text, value",
    [
        ("125", Decimal(125)),
        ("+3", Decimal(3)),
        ("-2.5", Decimal("-2.5")),
        (".5", Decimal("0.5")),
        ("5.", Decimal(5)),
        ("-.25", Decimal("-0.25")),
    ],
)
def test_plain_decimal_forms_are_accepted(text, value):
    assert decimal(text, "amount") == value


def test_amount_with_exponent_is_rejected():
    assert rejection(decimal, "1e5") == "malformed amount '1e5': exponent notation is not allowed"


@pytest.mark.parametrize("text", ["NaN", "-Infinity", "inf", "sNaN"])
def test_nan_and_infinity_are_rejected(text):
    assert "NaN and Infinity are not numbers" in rejection(decimal, text)


@pytest.mark.parametrize("text", ["1,000", "1_000", "1 000"])
def test_thousands_separators_are_rejected(text):
    assert "digit separators are not allowed" in rejection(decimal, text)


@pytest.mark.parametrize("text", ["abc", "1.2.3", "--1", "+", ".", "0x10", "١٢"])
def test_other_junk_is_not_a_decimal(text):
    assert "not a plain decimal number" in rejection(decimal, text)


def test_twelve_whole_digits_are_accepted_thirteen_are_not():
    assert decimal("9" * 12, "balance") == Decimal("9" * 12)
    assert "more than 12 digits before" in rejection(decimal, "1" * 13, "balance")


def test_leading_zeros_count_as_digits():
    assert "more than 12 digits before" in rejection(decimal, "0" * 12 + "1")


def test_eight_fraction_digits_are_accepted_nine_are_not():
    assert decimal("0.12345678", "limit") == Decimal("0.12345678")
    assert "more than 8 digits after" in rejection(decimal, "0.123456780", "limit")


def test_negative_zero_becomes_zero():
    value = non_negative("-0", "balance")
    assert value == 0 and not value.is_signed()


def test_negative_balance_is_rejected():
    assert rejection(non_negative, "-1", "balance") == "balance must not be negative"


def test_zero_amount_is_rejected():
    assert rejection(nonzero, "0.000", "amount") == "amount must not be 0"


def test_zero_or_negative_limit_is_rejected():
    assert rejection(positive, "0", "limit") == "limit must be greater than 0"
    assert rejection(positive, "-3", "limit") == "limit must be greater than 0"


def test_long_values_are_shortened_in_messages():
    message = rejection(decimal, "x" * 10_000)
    assert len(message) < 120 and message.endswith("...: not a plain decimal number")


def test_order_id_is_an_integer():
    assert order_id(" 42 ", "order id") == 42
    assert order_id("007", "order id") == 7


def test_order_id_must_fit_a_bigint():
    assert order_id(str(2**63 - 1), "order id") == 2**63 - 1
    assert "malformed order id" in rejection(order_id, str(2**63), "order id")


@pytest.mark.parametrize("text", ["-1", "1.0", "1e3", "x", "١"])
def test_order_id_that_is_not_plain_digits_is_malformed(text):
    assert rejection(order_id, text, "order id").startswith("malformed order id")


@pytest.mark.parametrize("text, value", [("1", 1), ("1000", 1000), (" +7 ", 7), ("07.0", 7)])
def test_count_is_a_whole_number_from_1_to_1000(text, value):
    assert count(text, "depth") == value


@pytest.mark.parametrize("text", ["0", "-0", "1001", "2.5", "-3", "99999999999"])
def test_count_out_of_range_or_fractional_is_malformed(text):
    assert rejection(count, text, "depth") == (
        f"malformed depth {text!r}: must be a whole number from 1 to 1000"
    )


@pytest.mark.parametrize("text", ["1e2", "NaN", "1,000", "ten", "١٠"])
def test_count_that_is_not_a_plain_decimal_is_malformed_as_any_number(text):
    assert rejection(count, text, "limit").startswith(f"malformed limit {text!r}: ")


def test_order_id_with_thousands_of_digits_is_rejected_quickly():
    assert "malformed order id" in rejection(order_id, "9" * 100_000, "order id")


@pytest.mark.parametrize(
    "value, text",
    [
        (Decimal("125"), "125"),
        (Decimal("0.50"), "0.5"),
        (Decimal("1E+6"), "1000000"),
        (Decimal("-0"), "0"),
        (Decimal("0E-8"), "0"),
        (Decimal("-2.500"), "-2.5"),
        (Decimal("1E-16"), "0.0000000000000001"),
        (Decimal("120.00"), "120"),
    ],
)
def test_format_decimal_is_canonical(value, text):
    assert format_decimal(value) == text


def test_format_decimal_keeps_more_digits_than_the_context_precision():
    value = Decimal("123456789012345678901234567890.1234567890123456")
    assert format_decimal(value) == "123456789012345678901234567890.1234567890123456"


def test_format_decimal_refuses_nan():
    with pytest.raises(ValueError):
        format_decimal(Decimal("NaN"))


wire_decimals = st.from_regex(r"\A[+-]?([0-9]{1,12}(\.[0-9]{0,8})?|\.[0-9]{1,8})\Z")


@given(wire_decimals)
def test_valid_decimals_parse_to_the_same_decimal(text):
    value = decimal(text, "amount")
    assert value == Decimal(text)
    assert decimal(format_decimal(value), "amount") == value


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_format_decimal_never_uses_exponents_and_round_trips(value):
    text = format_decimal(value)
    assert "E" not in text and "e" not in text
    assert Decimal(text) == value
    assert text != "-0"
