class TranslatorError(Exception):
    """A problem the user can act on.

    Its message is shown as it is, on one line, by the command line and the app; anything
    else that escapes is a bug and is reported as one.
    """
