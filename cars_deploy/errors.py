"""Exceptions that the command-line layer turns into one-line messages and exit codes.

``UserInputError`` (exit 2) means the user can fix the call: a malformed genotype, a missing file, a
table without the needed entry. ``DeviceError`` (exit 1) means the call was right but the world failed:
an unreachable phone, a runner that crashed.
"""
from __future__ import annotations

__all__ = ["CarsError", "UserInputError", "GenotypeError", "CheckpointError", "DeviceError"]


class CarsError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = 1


class UserInputError(CarsError, ValueError):
    """Bad input given by the user; the message says what is wrong and how to fix it."""

    exit_code = 2


class GenotypeError(UserInputError):
    """A genotype string, file or array that does not describe a cell of the DARTS space."""


class CheckpointError(UserInputError):
    """A checkpoint that is missing, truncated, corrupt or belongs to another run or model."""


class DeviceError(CarsError):
    """A device (local runtime or phone) that could not run what was asked of it."""

    exit_code = 1
