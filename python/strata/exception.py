"""Errors raised by the strata client, named after ``modal.exception``."""


class Error(Exception):
    """Base class of every strata client error."""


class InvalidError(Error):
    """A definition asks for something that is not valid, or not supported."""


class NotFoundError(Error):
    """A named secret, volume, image or file does not exist."""


class VersionError(Error):
    """The strata binary speaks another builder version than this package."""


class StrataNotFoundError(Error):
    """No strata binary was found on PATH or at STRATA_BIN."""


class ImageBuildError(Error):
    """The engine failed to build an image."""


class ExecutionError(Error):
    """A strata command other than a build failed."""


class FunctionTimeoutError(Error):
    """A function call ran longer than its timeout, and was stopped."""


class RemoteError(Error):
    """A function failed in its container in a way that cannot be raised here as itself: its
    exception or result could not be pickled there or unpickled here."""
