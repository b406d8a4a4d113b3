"""User-facing errors raised by the features package (the CLI prints them and exits 2)."""


class FeaturesError(Exception):
    """Base of the errors a user can fix: bad images, missing weights, bad extractor settings."""


class ImageError(FeaturesError):
    """An image (or mask) could not be read or is not usable; says which file and why."""

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class WeightsError(FeaturesError):
    """Backbone weights are missing or do not fit the backbone; says where to put them."""


class BackboneError(FeaturesError):
    """An unknown backbone name or an impossible setting for one."""
