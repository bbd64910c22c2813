"""The device registry (``local``, ``adb``) and ``open_device``, which checks the options and opens one by spec.

The device kinds build on ``device.py`` (the protocol, specs and options); this module sits above
them and registers each by the ``kind`` of its spec, so that ``device.py`` never imports a device kind.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from .._registry import Registry
from ..errors import UserInputError
from ..formats import format_for_runtime
from .adb import AdbDevice
from .device import Device, DeviceOptions, DeviceSpec, parse_device_spec
from .local import LocalDevice
from .runners import resolve_runner_path

__all__ = ["DEVICES", "open_device"]

#: Device kind -> factory ``(spec, options) -> Device``.
DEVICES: Registry[Callable[[DeviceSpec, DeviceOptions], Device]] = Registry("device")
DEVICES.add("local", LocalDevice)
DEVICES.add("adb", AdbDevice)


def open_device(spec: str | DeviceSpec, options: DeviceOptions) -> Device:
    """The device for ``spec`` (parsed if text), connected and ready for ``prepare``."""
    parsed = parse_device_spec(spec) if isinstance(spec, str) else spec
    format_for_runtime(options.runtime)  # an unknown runtime is a UserInputError naming the known ones
    options.validate()
    if options.threads < 1:
        raise UserInputError(f"--threads must be at least 1, got {options.threads}")
    if options.cpu_mask is not None and bin(options.cpu_mask).count("1") != options.threads:
        raise UserInputError(
            f"--threads {options.threads} does not match --cpu-mask {options.cpu_mask:x} "
            f"({bin(options.cpu_mask).count('1')} CPUs); give one thread per CPU of the mask"
        )
    if options.runner_path is not None:
        # One absolute path from here on: the file checked is the file run (never a $PATH lookup).
        options = replace(options, runner_path=resolve_runner_path(options.runner_path))
    return DEVICES.get(parsed.kind)(parsed, options)
