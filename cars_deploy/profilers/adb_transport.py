"""The ADB connection to one phone: its RSA key, connecting over TCP or USB, and surviving dropped connections.

Talks to the phone's ``adbd`` directly through ``adb-shell`` (no ``adb`` binary or server needed):

- authentication with an RSA key created on first use under the user's config folder
  (``~/.config/cars-deploy/adbkey``, mode 0600); the phone asks once to allow it;
- read timeouts are long (a batch may run minutes); a dropped connection is reopened with
  exponential backoff and the interrupted call is run again (``AdbConnection.retrying``), each
  reconnection recorded for the table's sidecar.

What runs over the connection (the scripts) is in ``adb_scripts.py``; the device that uses it in ``adb.py``.
"""
from __future__ import annotations

import io
import logging
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from adb_shell.transport.tcp_transport import TcpTransport

from ..errors import DeviceError, UserInputError
from .device import DeviceOptions, DeviceSpec

__all__ = ["AdbConnection", "IncompleteOutput", "default_key_path", "ensure_adb_key"]

_log = logging.getLogger(__name__)
T = TypeVar("T")


def default_key_path() -> Path:
    """``<user config dir>/cars-deploy/adbkey`` (``~/.config/cars-deploy/adbkey`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_config_dir("cars-deploy")) / "adbkey"


def ensure_adb_key(path: Path | None = None) -> Path:
    """The private key at ``path`` (default ``default_key_path()``), created on first use.

    A key is created only where neither ``PATH`` nor ``PATH.pub`` exists, and never replaces a file: an
    existing ``PATH`` must be an RSA private key with its ``PATH.pub`` beside it, anything else (a
    folder, a file that is not a key, a key without its ``.pub``, a lone ``.pub``) is a one-line
    ``UserInputError`` that changes nothing. The key is generated inside a fresh private (0700) folder
    next to its destination and linked into place (``os.link`` fails rather than overwrite a file that
    appeared meanwhile), so it is never readable by others, not even for a moment; an existing key with
    loose permissions is tightened to 0600."""
    from adb_shell.auth.keygen import keygen

    path = Path(path) if path is not None else default_key_path()
    public = path.with_name(path.name + ".pub")
    if path.exists() or path.is_symlink() or public.exists() or public.is_symlink():
        _check_key_pair(path, public)
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise UserInputError(f"--adb-key {path}: cannot create the key there ({exc.strerror or exc})") from None
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".adbkey-") as folder:
        fresh = Path(folder) / "adbkey"
        keygen(str(fresh))
        os.chmod(fresh, 0o600)
        try:
            os.link(fresh.with_name("adbkey.pub"), public)
            try:
                os.link(fresh, path)
            except BaseException:
                public.unlink(missing_ok=True)
                raise
        except FileExistsError:
            raise UserInputError(f"--adb-key {path}: another process created it meanwhile; run the command again") from None
    _log.info("created ADB key %s; the phone will ask once to allow it", path)
    return path


def _check_key_pair(path: Path, public: Path) -> None:
    """Raises ``UserInputError`` unless ``path`` is an RSA private key (PEM) and ``public`` a file beside it."""
    if path.is_dir():
        raise UserInputError(f"--adb-key {path} is a folder; give the path of the key file (PATH, with PATH.pub beside it)")
    if not path.is_file():
        raise UserInputError(f"--adb-key {path} does not exist but {public.name} does; give the path of an existing "
                             "key pair, or a new path for a new key")
    if not public.is_file():
        raise UserInputError(f"--adb-key {path} exists but {public.name} does not; give a key pair (PATH and PATH.pub) "
                             "or a new path for a new key (the file is left as it is)")
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        with open(path, "rb") as handle:
            data = handle.read(64 * 1024 + 1)
        key = load_pem_private_key(data, password=None) if len(data) <= 64 * 1024 else None
    except (OSError, ValueError, TypeError):
        key = None
    if not isinstance(key, RSAPrivateKey):
        raise UserInputError(f"--adb-key {path} is not an RSA private key in PEM format (as adb and cars-profile write); "
                             "give an ADB key or a new path for a new key (the file is left as it is)")


class IncompleteOutput(Exception):
    """A command whose output lacks its end markers: the shell died or the stream was cut. Retried like a
    dropped connection."""


class _AuthRefused(Exception):
    """The phone did not accept our key."""


def _dropped_errors() -> tuple[type[BaseException], ...]:
    from adb_shell import exceptions as ex

    return (
        OSError,  # ConnectionError, TimeoutError and socket errors
        ex.AdbConnectionError, ex.AdbTimeoutError, ex.TcpTimeoutException, ex.InvalidResponseError,
        ex.InvalidChecksumError, ex.InvalidCommandError, ex.UsbReadFailedError, ex.UsbWriteFailedError,
    )


class AdbConnection:
    """An authenticated ``adb-shell`` connection to the phone of ``spec``, reopened after a drop."""

    def __init__(
        self, spec: DeviceSpec, options: DeviceOptions, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.spec = spec
        self.options = options
        self.key_path = ensure_adb_key(options.key_path)
        self.reconnects: list[dict[str, Any]] = []  # one entry per reconnection, for the sidecar
        self._sleep = sleep
        self._device: Any = None
        self._auth_prompted = False
        self._connect(first=True)

    def retrying(self, what: str, call: Callable[[], T]) -> T:
        """Runs ``call``; on a dropped connection (or ``IncompleteOutput``), reconnects with exponential
        backoff and runs it again."""
        attempt = 0
        while True:
            try:
                if self._device is None:
                    self._connect()
                return call()
            except (IncompleteOutput, *_dropped_errors()) as exc:
                if isinstance(exc, (UserInputError, DeviceError)):
                    raise
                self.close()
                if attempt >= self.options.reconnect_attempts:
                    raise DeviceError(
                        f"lost the connection to {self.spec} while {what} ({type(exc).__name__}: {exc}) and "
                        f"{attempt} reconnection attempts failed; rerun the same command to resume"
                    ) from None
                delay = min(self.options.reconnect_backoff_s * 2**attempt, 30.0)
                attempt += 1
                self.reconnects.append({"while": what, "error": f"{type(exc).__name__}: {exc}"[:200], "wait_s": delay})
                _log.warning("connection to %s lost while %s (%s); reconnecting in %.1f s", self.spec, what, exc, delay)
                self._sleep(delay)
            except _AuthRefused:
                raise DeviceError(self._refused_message()) from None

    def shell(self, command: str, *, what: str) -> str:
        """The output of ``command`` in the phone's shell, retried after a dropped connection."""
        return self.retrying(what, lambda: self.shell_once(command))

    def shell_once(self, command: str) -> str:
        """One attempt at ``command``, for a ``call`` given to ``retrying`` (which connects first)."""
        timeout = self.options.read_timeout_s
        return self._device.shell(command, transport_timeout_s=timeout, read_timeout_s=timeout)

    def push(self, data: bytes, remote: str, *, mode: int, what: str) -> None:
        """Writes ``data`` to the file ``remote`` on the phone with permissions ``mode``, retried after a drop."""
        timeout = self.options.read_timeout_s

        def push() -> None:
            from adb_shell.exceptions import AdbCommandFailureException, PushFailedError

            try:
                self._device.push(io.BytesIO(data), remote, st_mode=mode, transport_timeout_s=timeout, read_timeout_s=timeout)
            except (PushFailedError, AdbCommandFailureException) as exc:
                raise DeviceError(f"pushing {remote} to {self.spec} failed: {exc}") from None

        self.retrying(what, push)

    def max_command_length(self) -> int:
        """The longest shell command one service request carries."""
        # adbd accepts a service request of up to its maximum payload (4 KiB on very old phones).
        maxdata = int(getattr(self._device, "_maxdata", 4096) or 4096) if self._device is not None else 4096
        return max(maxdata - 64, 1024)

    def close(self) -> None:
        if self._device is not None:
            try:
                self._device.close()
            except Exception:  # noqa: BLE001 - closing a broken connection must not mask the real error
                pass
            self._device = None

    def _connect(self, *, first: bool = False) -> None:
        from adb_shell.adb_device import AdbDevice as _AdbDevice
        from adb_shell.auth.sign_cryptography import CryptographySigner
        from adb_shell.exceptions import DeviceAuthError

        signer = CryptographySigner(str(self.key_path))
        self._auth_prompted = False
        try:
            if self.spec.serial is not None:
                device = self._usb_device()
            else:
                device = _AdbDevice(_EofAwareTcpTransport(self.spec.host, self.spec.port), default_transport_timeout_s=self.options.read_timeout_s)
            timeout = self.options.connect_timeout_s
            device.connect(
                rsa_keys=[signer], transport_timeout_s=timeout, auth_timeout_s=self.options.auth_timeout_s,
                read_timeout_s=max(timeout, self.options.auth_timeout_s), auth_callback=self._on_auth_prompt,
            )
        except DeviceAuthError as exc:
            raise DeviceError(f"{self.spec} refused authentication: {exc}") from None
        except _dropped_errors() as exc:
            if self._auth_prompted:
                if first:
                    raise DeviceError(self._refused_message()) from None
                raise _AuthRefused(str(exc)) from None
            if first:
                raise DeviceError(self._unreachable_message(exc)) from None
            raise
        self._device = device

    def _on_auth_prompt(self, _device: object) -> None:
        self._auth_prompted = True

    def _usb_device(self) -> Any:
        from adb_shell.adb_device import AdbDeviceUsb
        from adb_shell.exceptions import InvalidTransportError, UsbDeviceNotFoundError

        try:
            return AdbDeviceUsb(serial=self.spec.serial, default_transport_timeout_s=self.options.read_timeout_s)
        except InvalidTransportError:
            raise DeviceError(
                "USB devices need the libusb-1.0 system library (e.g. apt install libusb-1.0-0) and "
                "pip install 'adb-shell[usb]'; or connect over TCP with adb:HOST:PORT"
            ) from None
        except UsbDeviceNotFoundError:
            raise DeviceError(
                f"no USB device with serial {self.spec.serial} (plugged in, USB debugging on? if an adb server holds "
                "it, run `adb kill-server`)"
            ) from None

    def _unreachable_message(self, exc: BaseException) -> str:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        if self.spec.serial is not None:
            return f"cannot open {self.spec}: {reason}"
        return (
            f"cannot reach {self.spec}: {reason} (is the phone on this network with `adb tcpip {self.spec.port}` "
            "run once over USB? Android 11+ paired wireless debugging (TLS) is not supported)"
        )

    def _refused_message(self) -> str:
        return (
            f"{self.spec} refused the ADB key {self.key_path}.pub: accept the 'Allow USB debugging?' prompt on "
            "the phone (tick 'Always allow') and retry"
        )


class _EofAwareTcpTransport(TcpTransport):  # type: ignore[misc]
    """adb-shell's ``TcpTransport`` that reports a closed connection.

    The stock transport returns ``b''`` forever once the phone closes the socket, and adb-shell then
    spins until its read timeout, which must be long here (a batch can run for minutes): a dropped
    connection would be noticed only after that. Raising ``ConnectionResetError`` on end-of-file
    makes a drop visible at once, so the reconnect logic can act. It also sets ``TCP_NODELAY``:
    adb-shell writes each message header and payload separately, and Nagle's algorithm would hold
    every small payload back for a delayed ACK (tens of milliseconds per message)."""

    def connect(self, transport_timeout_s: float | None) -> None:
        super().connect(transport_timeout_s)
        self._connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def bulk_read(self, numbytes: int, transport_timeout_s: float | None) -> bytes:
        if self._connection is None:
            raise ConnectionResetError("not connected")
        data = super().bulk_read(numbytes, transport_timeout_s)
        if numbytes and not data:
            raise ConnectionResetError("the device closed the connection")
        return data

    def bulk_write(self, data: bytes, transport_timeout_s: float | None) -> int:
        if self._connection is None:
            raise ConnectionResetError("not connected")
        return super().bulk_write(data, transport_timeout_s)
