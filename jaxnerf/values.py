"""Tests of single config values, shared by every layer that checks one (training/config_checks.py's rules,
the procedural scene's spec, registered components' rules): each is (value) -> bool, and the named rules
pair a test with the words an error uses for what is expected."""

import math


def is_number(v) -> bool:
  """A finite int or float (not a bool)."""
  return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_positive_int(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool) and v > 0


def is_non_negative_int(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def is_positive(v) -> bool:
  return is_number(v) and v > 0


def is_non_negative(v) -> bool:
  return is_number(v) and v >= 0


def is_fraction(v) -> bool:  # (0, 1]
  return is_number(v) and 0 < v <= 1


def is_probability(v) -> bool:  # [0, 1)
  return is_number(v) and 0 <= v < 1


# (test, what is expected): the rules most keys use.
POSITIVE_INT = (is_positive_int, 'a positive integer')
NON_NEGATIVE_INT = (is_non_negative_int, 'an integer >= 0')
POSITIVE = (is_positive, 'a finite number > 0')
NON_NEGATIVE = (is_non_negative, 'a finite number >= 0')
BOOL = (lambda v: isinstance(v, bool), 'True or False')
FRACTION = (is_fraction, 'a fraction in (0, 1]')


class _Choices:
  """'one of [...]' of a collection read when an error is written, so that a registry filled later (the
  fields, the renderers) is listed whole."""

  def __init__(self, options, ordered: bool):
    self._options, self._ordered = options, ordered

  def __str__(self) -> str:
    return f'one of {list(self._options) if self._ordered else sorted(self._options)}'

  def __format__(self, spec: str) -> str:
    return format(str(self), spec)


def one_of(options, ordered: bool = False):
  """The rule of a value that must be one of `options` (a registry's dict, a tuple), listed sorted or, with
  `ordered`, in their own order."""

  def test(value) -> bool:
    try:
      return value in options
    except TypeError:  # An unhashable value (a list) is in no dict.
      return False

  return (test, _Choices(options, ordered))
