"""The family of errors a user can fix; the CLI prints them as one message and exits 2."""

from features.errors import FeaturesError
from models.errors import ModelsError


class UserError(Exception):
    """A problem in the user's input (config, manifest, images, weights), not a bug.

    ``problems`` lists every bad item found, so the user can fix them all in one go.
    """

    def __init__(self, summary, problems=(), hint=None):
        self.summary = summary
        self.problems = list(problems)
        self.hint = hint
        super().__init__(self.render())

    def render(self):
        lines = [self.summary]
        lines += [f"  - {p}" for p in self.problems]
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)


class ConfigError(UserError):
    """The study file or a command-line override is invalid."""


class ManifestError(UserError):
    """The manifest (or the images it names) cannot be used as it is."""


class StageInputError(UserError):
    """A stage's inputs (earlier artifacts) are missing or were made for another study."""


class StaleError(StageInputError):
    """An upstream stage's committed result no longer matches its inputs: it must be re-run."""


class StorageError(UserError):
    """The operating system refused a write (disk full, read-only folder, permission denied)."""


class RunLockedError(UserError):
    """Another process holds the run folder (and the user asked not to wait)."""


#: Everything the CLI reports without a traceback.
USER_ERRORS = (UserError, FeaturesError, ModelsError)
