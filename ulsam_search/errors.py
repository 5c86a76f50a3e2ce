"""The one exception type for bad user input: the CLI prints its message on one line and exits with code 2."""


class InvalidInput(ValueError):
    """A user-supplied value (ARCH string, variant name, option) is not valid; the message names the valid choices."""


class NothingTrained(RuntimeError):
    """A search or ablation ended with no COMPLETE trial: the CLI prints the counts and the most frequent error
    on one line and exits with code 1 (the report is still written)."""
