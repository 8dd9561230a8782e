"""User-facing errors: bad input that the CLI reports in one message with exit code 2."""

from __future__ import annotations


class NncliError(Exception):
    """Bad input from the user (a config, a data file, an expression, a run id).

    The CLI prints ``str(err)`` on stderr without a traceback and exits with code 2.
    ``where`` names the place (``file:line:col``, ``file:row``, a dotted key); it is
    put in front of the message when given.
    """

    exit_code = 2

    def __init__(self, message: str, where: str | None = None):
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(NncliError):
    """One or more problems in a config file or a ``--set`` override."""


class DataError(NncliError):
    """A data file or data set that cannot be used as given."""


class LabelError(DataError):
    """A label that is not one of the model's classes."""


class TargetError(DataError):
    """A target column that is not in the file (an unknown name, a position past its columns)."""


class ExpressionError(NncliError):
    """An expression for ``nncli grad`` that is not allowed or does not parse."""


class RunError(NncliError):
    """An unknown run id, or a folder that is not a usable run."""


def close_matches(name: str, options, n: int = 1) -> list[str]:
    """The ``n`` options nearest to ``name`` (difflib's ratio of at least 0.5), best first.

    The one rule behind every "did you mean" in nncli: config keys, component and data set names,
    CSV columns, run ids.
    """
    import difflib

    return difflib.get_close_matches(str(name), [str(o) for o in options], n=n, cutoff=0.5)


def did_you_mean(name: str, options, *, sentence: bool = False) -> str:
    """`` (did you mean 'x'?)`` after a phrase, or `` Did you mean 'x'?`` after a sentence; ``""``
    when nothing is close.

    Example:
        >>> did_you_mean("digts", ["digits", "iris"])
        " (did you mean 'digits'?)"
    """
    match = close_matches(name, options)
    if not match:
        return ""
    return f" Did you mean '{match[0]}'?" if sentence else f" (did you mean '{match[0]}'?)"
