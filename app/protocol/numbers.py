"""Wire values (SPEC §1): ids, symbols and decimals, checked before they become commands.

Every validator takes the attribute's raw text (None when absent) and a name
for messages, and raises `InvalidValue` naming the attribute and the problem.
Patterns are spelled with `[0-9]`, never `\\d`, so non-ASCII digits never pass.
"""

import re
from decimal import Decimal
from enum import Enum

BIGINT_MAX = 2**63 - 1
MOST_SHOWN = 1000  # the largest `depth` or `limit` a read accepts (SPEC §7)
WHITESPACE = " \t\r\n"
SHOWN_CHARS = 32

ACCOUNT_ID = re.compile(r"[0-9]{1,64}")
SYMBOL = re.compile(r"[A-Za-z0-9]{1,32}")
ORDER_ID = re.compile(r"0*([0-9]{1,19})")
DECIMAL = re.compile(r"[+-]?(?:([0-9]+)(?:\.([0-9]*))?|\.([0-9]+))")
EXPONENT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][+-]?[0-9]*")
NOT_FINITE = re.compile(r"[+-]?(?:s?nan[0-9]*|inf|infinity)", re.IGNORECASE)
SEPARATOR = re.compile(r"[0-9][,_' ][0-9]")


class Flaw(Enum):
    """Every way a wire value can be wrong, in one table."""

    MISSING = "missing {name}"
    EMPTY = "{name} is empty"
    ACCOUNT_ID = "malformed {name} {shown}: must be 1 to 64 ASCII digits"
    SYMBOL = "malformed {name} {shown}: must be 1 to 32 ASCII letters and digits"
    ORDER_ID = f"malformed {{name}} {{shown}}: must be a whole number from 0 to {BIGINT_MAX}"
    EXPONENT = "malformed {name} {shown}: exponent notation is not allowed"
    NOT_FINITE = "malformed {name} {shown}: NaN and Infinity are not numbers"
    SEPARATOR = "malformed {name} {shown}: digit separators are not allowed"
    NOT_DECIMAL = "malformed {name} {shown}: not a plain decimal number"
    WHOLE_DIGITS = "malformed {name} {shown}: more than 12 digits before the decimal point"
    FRACTION_DIGITS = "malformed {name} {shown}: more than 8 digits after the decimal point"
    NEGATIVE = "{name} must not be negative"
    NOT_POSITIVE = "{name} must be greater than 0"
    ZERO = "{name} must not be 0"
    COUNT = f"malformed {{name}} {{shown}}: must be a whole number from 1 to {MOST_SHOWN}"


class InvalidValue(ValueError):
    """A wire value that breaks SPEC §1; the reply's `<error>` carries the message."""

    def __init__(self, flaw: Flaw, name: str, text: str = ""):
        shown = repr(text[:SHOWN_CHARS]) + ("..." if len(text) > SHOWN_CHARS else "")
        super().__init__(flaw.value.format(name=name, shown=shown))
        self.flaw = flaw


def account_id(raw: str | None, name: str) -> str:
    """Account ids stay text: "007" and "7" are different accounts."""
    return _matching(raw, name, ACCOUNT_ID, Flaw.ACCOUNT_ID)


def symbol(raw: str | None, name: str) -> str:
    return _matching(raw, name, SYMBOL, Flaw.SYMBOL)


def order_id(raw: str | None, name: str) -> int:
    """Order ids are issued by the exchange as PostgreSQL bigints."""
    text = _present(raw, name)
    match = ORDER_ID.fullmatch(text)
    if match is None or int(match[1]) > BIGINT_MAX:
        raise InvalidValue(Flaw.ORDER_ID, name, text)
    return int(match[1])


def count(raw: str | None, name: str) -> int:
    """How many levels or trades to show: a plain decimal (SPEC §1) whole from 1 to MOST_SHOWN."""
    value = decimal(raw, name)
    if value != value.to_integral_value() or not 1 <= value <= MOST_SHOWN:
        raise InvalidValue(Flaw.COUNT, name, raw.strip(WHITESPACE))
    return int(value)


def non_negative(raw: str | None, name: str) -> Decimal:
    value = decimal(raw, name)
    if value < 0:
        raise InvalidValue(Flaw.NEGATIVE, name)
    return value


def positive(raw: str | None, name: str) -> Decimal:
    value = decimal(raw, name)
    if value <= 0:
        raise InvalidValue(Flaw.NOT_POSITIVE, name)
    return value


def nonzero(raw: str | None, name: str) -> Decimal:
    value = decimal(raw, name)
    if value == 0:
        raise InvalidValue(Flaw.ZERO, name)
    return value


def decimal(raw: str | None, name: str) -> Decimal:
    """Plain decimal notation only, digits counted as written; "-0" becomes 0."""
    text = _present(raw, name)
    match = DECIMAL.fullmatch(text)
    if match is None:
        raise InvalidValue(_why_not_decimal(text), name, text)
    whole, fraction = match[1] or "", match[2] or match[3] or ""
    if len(whole) > 12:
        raise InvalidValue(Flaw.WHOLE_DIGITS, name, text)
    if len(fraction) > 8:
        raise InvalidValue(Flaw.FRACTION_DIGITS, name, text)
    value = Decimal(text)
    return value.copy_abs() if value.is_zero() else value


def format_decimal(value: Decimal) -> str:
    """Canonical wire form: `125`, `0.5`, `1000000`; no exponent, no trailing zeros, no "-0"."""
    if not value.is_finite():
        raise ValueError(f"cannot put {value} on the wire")
    if value.is_zero():
        return "0"
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _matching(raw: str | None, name: str, pattern: re.Pattern, flaw: Flaw) -> str:
    text = _present(raw, name)
    if pattern.fullmatch(text) is None:
        raise InvalidValue(flaw, name, text)
    return text


def _present(raw: str | None, name: str) -> str:
    if raw is None:
        raise InvalidValue(Flaw.MISSING, name)
    text = raw.strip(WHITESPACE)
    if not text:
        raise InvalidValue(Flaw.EMPTY, name)
    return text


def _why_not_decimal(text: str) -> Flaw:
    if EXPONENT.fullmatch(text):
        return Flaw.EXPONENT
    if NOT_FINITE.fullmatch(text):
        return Flaw.NOT_FINITE
    if SEPARATOR.search(text):
        return Flaw.SEPARATOR
    return Flaw.NOT_DECIMAL
