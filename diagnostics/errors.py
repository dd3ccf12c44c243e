"""The one error type of NormScope.

Every problem with user input is raised as :class:`NormScopeError` with a message that says
what is wrong, where, and what to do.  The command line turns it into ``error: ...`` and exit
status 2; the app shows it with ``st.error`` and keeps the previous state.
"""


class NormScopeError(ValueError):
    """Bad input: the message is one sentence meant for the user."""
