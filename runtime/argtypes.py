"""argparse ``type=`` validators of the device-side command lines (run.py, profile.py): a bad
value is a usage error that names it and what was expected."""

from __future__ import annotations

import argparse


def checked(convert, ok, what: str):
    """An argparse ``type=``: ``convert`` the text, then require ``ok(value)``; the error names
    the value and what was expected."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value
    parse.__name__ = what  # argparse names the type by it in its messages
    return parse


positive_int = checked(int, lambda v: v >= 1, "an integer >= 1")
unit_float = checked(float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")
positive_float = checked(float, lambda v: v > 0, "a number > 0")
non_negative_float = checked(float, lambda v: v >= 0, "a number >= 0")
non_negative_int = checked(int, lambda v: v >= 0, "an integer >= 0")
