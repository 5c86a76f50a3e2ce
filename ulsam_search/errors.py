"""The one exception type for bad user input: the CLI prints its message on one line and exits with code 2."""


class InvalidInput(ValueError):
    """A user-supplied value (ARCH string, variant name, option) is not valid; the message names the valid choices."""
