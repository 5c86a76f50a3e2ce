"""The one exception type for bad user input: the CLI prints its message on one line and exits with code 2."""

import argparse


class InvalidInput(ValueError):
    """A user-supplied value (ARCH string, variant name, option) is not valid; the message names the valid choices."""


class NothingTrained(RuntimeError):
    """A search or ablation ended with no COMPLETE trial: the CLI prints the counts and the most frequent error
    on one line and exits with code 1 (the report is still written)."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports bad usage as one line (exit 2) instead of the usage block: the CLI's and the
    benchmarks' parsers, so that ``ulsam-search bench NAME --bad`` reads like any other bad input."""

    def error(self, message: str) -> None:
        raise InvalidInput(f"{self.prog}: {message}")
