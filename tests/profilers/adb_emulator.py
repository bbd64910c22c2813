"""A test stand-in for an Android phone: the device side of the real ADB wire protocol on 127.0.0.1.

Speaks what ``adbd`` speaks to a host over TCP (``adb tcpip`` mode), so that adb-shell's
``AdbDeviceTcp`` talks to it exactly as to a phone:

- 24-byte messages ``CNXN/AUTH/OPEN/OKAY/WRTE/CLSE`` with checksums and magic, WRTE/OKAY flow control;
- optional RSA authentication: a 20-byte token, a signature checked against accepted public keys
  (Android ``adb_keys`` format), or the host's public key, accepted only if listed (a phone whose user
  taps "deny" closes the connection);
- the ``shell:`` service (raw v1 shell, stdout and stderr merged, as adb-shell uses it): the command
  runs on this machine with ``/bin/sh`` (an argv list, never ``shell=True``) in a sandbox folder; the
  absolute prefixes ``/data/local/tmp``, ``/sys/`` and ``/proc/`` in the command are mapped into the
  sandbox, where fake ``/proc/cpuinfo``, ``/sys`` CPU-frequency and thermal-zone files and a
  ``getprop`` script answer the device-facts queries;
- the ``sync:`` service for push and stat (``STAT``, ``SEND``/``DATA``/``DONE``, and ``RECV``/``QUIT``),
  writable only under ``/data/local/tmp`` as for a non-root shell;
- a switch that drops the connection in the middle of chosen shell commands (the command is killed
  after its first output and the socket closed), to test reconnecting.
"""
from __future__ import annotations

import base64
import os
import re
import signal
import socket
import struct
import subprocess
import threading
from pathlib import Path
from typing import Iterable, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

__all__ = ["AdbEmulator", "make_sandbox"]

A_CNXN, A_AUTH, A_OPEN, A_OKAY, A_WRTE, A_CLSE = (int.from_bytes(c, "little") for c in (b"CNXN", b"AUTH", b"OPEN", b"OKAY", b"WRTE", b"CLSE"))
AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3
VERSION = 0x01000000
MAX_PAYLOAD = 256 * 1024
BANNER = b"device::ro.product.name=carsemu;ro.product.model=CarsEmu 8;ro.product.device=carsemu;\0"
_PREFIXES = re.compile(r"(?<![\w./-])(/data/local/tmp|/sys/|/proc/)")

GETPROP = """#!/bin/sh
# Emulator stand-in for Android's getprop: reads the "[key]: [value]" lines of $CARS_EMU_ROOT/props.
if [ $# -eq 0 ]; then cat "$CARS_EMU_ROOT/props"; exit 0; fi
while IFS= read -r line; do
  case "$line" in "[$1]: ["*) v=${line#*]: [}; printf '%s\\n' "${v%]}"; exit 0;; esac
done < "$CARS_EMU_ROOT/props"
echo
"""


def make_sandbox(root: Path, *, cpus: int = 8, temps_mc: Sequence[int] = (38000, 41000, 29000)) -> Path:
    """Creates the emulated phone's file system under ``root`` and returns ``root``."""
    (root / "data/local/tmp").mkdir(parents=True, exist_ok=True)
    (root / "proc").mkdir(parents=True, exist_ok=True)
    (root / "proc/cpuinfo").write_text(
        "".join(f"processor\t: {i}\nBogoMIPS\t: 38.40\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n"
                f"CPU implementer\t: 0x41\nCPU part\t: {'0xd0d' if i >= 4 else '0xd05'}\n\n" for i in range(cpus))
        + "Hardware\t: Qualcomm Technologies, Inc SM8150\n"
    )
    cpu_root = root / "sys/devices/system/cpu"
    cpu_root.mkdir(parents=True, exist_ok=True)
    (cpu_root / "possible").write_text(f"0-{cpus - 1}\n")
    for i in range(cpus):
        freq = cpu_root / f"cpu{i}" / "cpufreq"
        freq.mkdir(parents=True, exist_ok=True)
        (freq / "cpuinfo_max_freq").write_text(f"{2841600 if i == cpus - 1 else 2419200 if i >= 4 else 1785600}\n")
        (freq / "scaling_governor").write_text("schedutil\n")
    for i, (kind, temp) in enumerate(zip(("cpu-0-0-usr", "cpu-1-0-usr", "battery"), temps_mc)):
        zone = root / f"sys/class/thermal/thermal_zone{i}"
        zone.mkdir(parents=True, exist_ok=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(f"{temp}\n")
    props = {
        "ro.product.model": "CarsEmu 8", "ro.product.manufacturer": "CarsEmu", "ro.product.device": "carsemu",
        "ro.board.platform": "msmnile", "ro.soc.model": "SM8150", "ro.soc.manufacturer": "Qualcomm",
        "ro.build.version.release": "12", "ro.build.version.sdk": "31", "ro.product.cpu.abi": "arm64-v8a",
    }
    (root / "props").write_text("".join(f"[{k}]: [{v}]\n" for k, v in props.items()))
    bin_dir = root / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "getprop").write_text(GETPROP)
    (bin_dir / "getprop").chmod(0o755)
    return root


def _android_public_key(text: str | bytes) -> rsa.RSAPublicKey:
    """Decodes an ``adbkey.pub`` line (base64 of Android's RSAPublicKey struct, then ``user@host``)."""
    blob = base64.b64decode(text.split()[0] if isinstance(text, str) else text.split()[0])
    words, _n0inv = struct.unpack_from("<II", blob)
    size = words * 4
    modulus = int.from_bytes(blob[8 : 8 + size], "little")
    exponent = struct.unpack_from("<I", blob, 8 + 2 * size)[0]
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


class _Dropped(Exception):
    """The emulator closed the connection on purpose."""


class AdbEmulator:
    """An emulated phone; use as a context manager, connect to ``adb:127.0.0.1:{port}``."""

    def __init__(
        self,
        root: Path,
        *,
        accepted_keys: Iterable[str] | None = None,
        drop_at: Iterable[int] = (),
        drop_filter: str | None = None,
    ) -> None:
        """``accepted_keys``: ``adbkey.pub`` texts allowed to connect (None: no authentication).
        ``drop_at``: 1-based ordinals of shell commands (counting only those containing ``drop_filter``
        when given) during which the connection is dropped."""
        self.root = Path(root)
        self.keys = [(k.split()[0], _android_public_key(k)) for k in accepted_keys] if accepted_keys is not None else None
        self.drop_at = set(drop_at)
        self.drop_filter = drop_filter
        self.shell_commands: list[str] = []  # every shell command received, as sent by the host
        self.pushed: list[str] = []  # every device path written by sync SEND
        self.connections = 0
        self.drops = 0
        self._counted = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._stopping = False

    # ----- lifecycle ----------------------------------------------------------------------------------
    def __enter__(self) -> "AdbEmulator":
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping = True
        try:
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        self._server.close()
        for sock in list(self._sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    @property
    def spec(self) -> str:
        return f"adb:127.0.0.1:{self.port}"

    def path(self, device_path: str) -> Path:
        """The sandbox file standing for ``device_path``."""
        return self.root / device_path.lstrip("/")

    def _accept(self) -> None:
        while not self._stopping:
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
            self._sockets.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            thread.start()
            self._threads.append(thread)

    # ----- messages -----------------------------------------------------------------------------------
    @staticmethod
    def _send(sock: socket.socket, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        header = struct.pack("<6I", command, arg0, arg1, len(data), sum(data) & 0xFFFFFFFF, command ^ 0xFFFFFFFF)
        sock.sendall(header + data)

    @staticmethod
    def _recv_exact(sock: socket.socket, size: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < size:
            chunk = sock.recv(size - len(chunks))
            if not chunk:
                raise EOFError("host closed the connection")
            chunks += chunk
        return bytes(chunks)

    def _recv(self, sock: socket.socket) -> tuple[int, int, int, bytes]:
        command, arg0, arg1, length, _checksum, magic = struct.unpack("<6I", self._recv_exact(sock, 24))
        if magic != command ^ 0xFFFFFFFF:
            raise EOFError("bad magic from host")
        return command, arg0, arg1, self._recv_exact(sock, length) if length else b""

    def _write(self, sock: socket.socket, local: int, remote: int, data: bytes) -> None:
        """Sends ``data`` on a stream in payload-sized WRTEs, each acknowledged by the host's OKAY."""
        for start in range(0, len(data), MAX_PAYLOAD):
            self._send(sock, A_WRTE, local, remote, data[start : start + MAX_PAYLOAD])
            while True:
                command, _, _, _ = self._recv(sock)
                if command == A_OKAY:
                    break
                if command == A_CLSE:
                    raise EOFError("host closed the stream")

    # ----- connection ---------------------------------------------------------------------------------
    def _serve(self, sock: socket.socket) -> None:
        try:
            if not self._handshake(sock):
                return
            next_id = 1
            while True:
                command, arg0, _arg1, data = self._recv(sock)
                if command != A_OPEN:
                    continue  # stray OKAY/CLSE of a finished stream
                local, next_id = next_id, next_id + 1
                service = data.rstrip(b"\0").decode("utf-8", "replace")
                if service.startswith("shell:"):
                    self._shell(sock, local, arg0, service[len("shell:") :])
                elif service.startswith("sync:"):
                    self._sync(sock, local, arg0)
                else:
                    self._send(sock, A_CLSE, 0, arg0)
        except (EOFError, OSError, _Dropped):
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def _handshake(self, sock: socket.socket) -> bool:
        command, _, _, _ = self._recv(sock)
        if command != A_CNXN:
            return False
        if self.keys is None:
            self._send(sock, A_CNXN, VERSION, MAX_PAYLOAD, BANNER)
            return True
        token = os.urandom(20)
        self._send(sock, A_AUTH, AUTH_TOKEN, 0, token)
        while True:
            command, kind, _, data = self._recv(sock)
            if command != A_AUTH:
                return False
            if kind == AUTH_SIGNATURE:
                for _, key in self.keys:
                    try:
                        key.verify(data, token, padding.PKCS1v15(), utils.Prehashed(hashes.SHA1()))
                    except InvalidSignature:
                        continue
                    self._send(sock, A_CNXN, VERSION, MAX_PAYLOAD, BANNER)
                    return True
                token = os.urandom(20)
                self._send(sock, A_AUTH, AUTH_TOKEN, 0, token)
            elif kind == AUTH_RSAPUBLICKEY:
                offered = data.rstrip(b"\0").split()[0].decode("ascii", "replace") if data.strip(b"\0") else ""
                if any(offered == known for known, _ in self.keys):
                    self._send(sock, A_CNXN, VERSION, MAX_PAYLOAD, BANNER)
                    return True
                return False  # the user denied the prompt: the phone drops the connection
            else:
                return False

    # ----- shell: -------------------------------------------------------------------------------------
    def rewrite(self, command: str) -> str:
        """Maps the device's absolute prefixes into the sandbox (one pass, so nothing is mapped twice)."""
        return _PREFIXES.sub(lambda m: str(self.root) + m.group(1), command)

    def _should_drop(self, command: str) -> bool:
        with self._lock:
            self.shell_commands.append(command)
            if self.drop_filter is not None and self.drop_filter not in command:
                return False
            self._counted += 1
            return self._counted in self.drop_at

    def _shell(self, sock: socket.socket, local: int, remote: int, command: str) -> None:
        self._send(sock, A_OKAY, local, remote)
        drop = self._should_drop(command)
        env = {"PATH": f"{self.root / 'bin'}:/usr/bin:/bin", "HOME": str(self.root), "CARS_EMU_ROOT": str(self.root), "LC_ALL": "C"}
        process = subprocess.Popen(
            ["/bin/sh", "-c", self.rewrite(command)], cwd=self.root, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            assert process.stdout is not None
            while True:
                chunk = os.read(process.stdout.fileno(), 65536)
                if drop:
                    self._drop(sock, process)
                if not chunk:
                    break
                self._write(sock, local, remote, chunk)
            process.wait()
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            process.stdout.close()
        self._send(sock, A_CLSE, local, remote)

    def _drop(self, sock: socket.socket, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        with self._lock:
            self.drops += 1
        sock.shutdown(socket.SHUT_RDWR)
        raise _Dropped()

    # ----- sync: --------------------------------------------------------------------------------------
    def _sync(self, sock: socket.socket, local: int, remote: int) -> None:
        self._send(sock, A_OKAY, local, remote)
        buffer = b""
        receiving: dict[str, object] | None = None
        while True:
            command, _, _, data = self._recv(sock)
            if command == A_CLSE:
                self._send(sock, A_CLSE, local, remote)
                return
            if command != A_WRTE:
                continue
            self._send(sock, A_OKAY, local, remote)
            buffer += data
            while len(buffer) >= 8:
                request, length = struct.unpack("<4sI", buffer[:8])
                if receiving is not None and request == b"DONE":
                    buffer = buffer[8:]
                    self._write(sock, local, remote, self._finish_send(receiving, length))
                    receiving = None
                    continue
                if len(buffer) < 8 + length:
                    break
                payload, buffer = buffer[8 : 8 + length], buffer[8 + length :]
                if receiving is not None and request == b"DATA":
                    receiving["data"].append(payload)  # type: ignore[union-attr]
                elif request == b"STAT":
                    self._write(sock, local, remote, self._stat(payload.decode()))
                elif request == b"SEND":
                    path, _, mode = payload.decode().rpartition(",")
                    receiving = {"path": path, "mode": int(mode or "0"), "data": []}
                elif request == b"RECV":
                    self._write(sock, local, remote, self._recv_file(payload.decode()))
                elif request == b"QUIT":
                    return
                else:
                    self._write(sock, local, remote, self._fail(f"unknown sync request {request!r}"))

    @staticmethod
    def _fail(message: str) -> bytes:
        data = message.encode()
        return b"FAIL" + struct.pack("<I", len(data)) + data

    def _writable(self, device_path: str) -> Path | None:
        if not (device_path == "/data/local/tmp" or device_path.startswith("/data/local/tmp/")) or "/../" in device_path:
            return None
        return self.path(device_path)

    def _stat(self, device_path: str) -> bytes:
        target = self.path(device_path) if device_path.startswith("/") else None
        try:
            info = target.stat() if target is not None else None
        except OSError:
            info = None
        if info is None:
            return b"STAT" + struct.pack("<3I", 0, 0, 0)
        return b"STAT" + struct.pack("<3I", info.st_mode & 0xFFFFFFFF, info.st_size & 0xFFFFFFFF, int(info.st_mtime))

    def _finish_send(self, receiving: dict[str, object], mtime: int) -> bytes:
        device_path = str(receiving["path"])
        target = self._writable(device_path)
        if target is None:
            return self._fail(f"couldn't create file: Permission denied ({device_path})")
        if not target.parent.is_dir():
            return self._fail(f"couldn't create file: No such file or directory ({device_path})")
        temporary = target.with_name(f".{target.name}.sync")
        temporary.write_bytes(b"".join(receiving["data"]))  # type: ignore[arg-type]
        os.chmod(temporary, int(receiving["mode"]) & 0o777 or 0o644)  # type: ignore[arg-type]
        os.utime(temporary, (mtime, mtime))
        os.replace(temporary, target)
        with self._lock:
            self.pushed.append(device_path)
        return b"OKAY" + struct.pack("<I", 0)

    def _recv_file(self, device_path: str) -> bytes:
        try:
            data = self.path(device_path).read_bytes()
        except OSError as exc:
            return self._fail(f"open failed: {exc.strerror}")
        out = b""
        for start in range(0, len(data), 64 * 1024):
            chunk = data[start : start + 64 * 1024]
            out += b"DATA" + struct.pack("<I", len(chunk)) + chunk
        return out + b"DONE" + struct.pack("<I", 0)
