"""User-facing errors: each becomes one line on stderr and exit code 2 in the CLI (docs/ARCHITECTURE.md §9).

Raise these (never bare ValueError) for anything a user can cause: a bad spec, a broken file, an unknown
name, a size that will not fit. Messages carry the numbers ("indptr has 101 entries; expected 129").
"""


class SpmmError(Exception):
    """Base class of every user mistake the CLI reports in one line."""


class SourceError(SpmmError):
    """A matrix spec that cannot be resolved or a file that cannot be read."""


class FormatError(SpmmError):
    """A sparse-format invariant is broken (offsets, indices, shapes, values)."""


class ParamError(SpmmError):
    """Unknown variant, unknown parameter or a value outside its domain."""


class ResourceError(SpmmError):
    """A problem too large for memory or for the index type a kernel needs."""


class DeviceUnavailable(SpmmError):
    """A variant needs hardware or a library that is not here (no CUDA device, no MKL)."""


class ResultsError(SpmmError):
    """Result files that would be overwritten, or that cannot be read back."""
