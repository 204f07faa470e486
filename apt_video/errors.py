"""The application's one error for the user: bad input, said in one line, exit status 2."""


class UserError(Exception):
    """Bad input from the user: printed as one line, exit status 2, no traceback."""
