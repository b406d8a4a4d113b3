"""User-facing errors raised by the models package (the CLI prints them and exits 2)."""


class ModelsError(ValueError):
    """The data or settings cannot support the requested fit; the message says what to change.

    A ``ValueError`` so that scikit-learn conventions (and callers catching ``ValueError``) hold.
    """
