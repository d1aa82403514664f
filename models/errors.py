"""Errors of the offline side that are the user's to fix. The command-line doors print them
as one line and exit with code 2; anything else (a bug in this code, numpy or Keras) ends in
a traceback and exit code 1.

InputError            base
├── DataError         an input file that cannot be used (names file, column and rule)
├── ConfigError       a --config file that cannot be used
└── NoServingModel    retraining without a readable DIR/current (and without --synthetic)
"""

from __future__ import annotations


class InputError(Exception):
    """Something the user gave (files, options) cannot be used; the message says what to fix."""


class DataError(InputError):
    """Input data that cannot be used; the message says which file, column and rule."""


class ConfigError(InputError):
    """A training configuration that cannot be used."""


class NoServingModel(InputError):
    """Retraining needs the serving model (its data source, its feedback cursor)."""
