class TranslatorError(Exception):
    """A problem the user can act on.

    Its message is shown as it is, on one line, by the command line and the app; anything
    else that escapes is a bug and is reported as one. ``details`` holds what only some want
    (each source tried and what it answered, hashes): the command line prints it on a line
    of its own, the page folds it away under the message.
    """

    def __init__(self, message: str = "", details: str = ""):
        super().__init__(message)
        self.details = details


class Unavailable(TranslatorError):
    """A validation measure this machine cannot compute (its network's weights cannot be
    fetched, say); a run notes the message once and validates without it."""


def one_line(error: BaseException, named: bool = False, limit: int = 200) -> str:
    """The first line of ``error``'s message, its white space folded and cut to ``limit``
    characters; ``named`` puts the error's type in front. Libraries' messages run to several
    lines (HTTP errors add request ids, tracebacks their frames), and a user gets one."""
    lines = [" ".join(line.split()) for line in str(error).splitlines()]
    text = next((line for line in lines if line), "")
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    if not text:
        return type(error).__name__
    return f"{type(error).__name__}: {text}" if named else text


def unexpected(error: BaseException) -> str:
    """How a bug reaches a user: the error's type and one line of its message."""
    return f"unexpected {one_line(error, named=True)}"


# longest message a boundary shows: a value a user sent (a megabyte of text, say) is not echoed back whole
SHOWN_LIMIT = 500


def shown(error: BaseException) -> str:
    """What a person is shown for ``error`` where it leaves the program (the command line, a
    page, an API answer): a TranslatorError's whole message on one line, anything else as the
    bug it is; never longer than ``SHOWN_LIMIT``."""
    text = " ".join(str(error).split()) if isinstance(error, TranslatorError) else unexpected(error)
    return text if len(text) <= SHOWN_LIMIT else text[: SHOWN_LIMIT - 3] + "..."
