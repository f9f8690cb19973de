"""The local runtime's sandbox: each deployment's replica host runs under bubblewrap (`bwrap`).

A chainlet is untrusted code (docs/security.md). Inside its sandbox it has:
- a PID namespace of its own: it sees and can signal only its deployment's processes, never the
  server's or another deployment's;
- a filesystem built from read-only binds of what running Python needs (the system's `/usr`,
  a curated part of `/etc`, the interpreters and their packages, chainyard itself), a tmpfs over
  the whole data dir, and on top of that only its own parts of it: its source and environment
  read-only, its scratch home, logs, run files and chainlet data dir writable;
- private `/tmp`, `/dev`, `/proc`, IPC and UTS namespaces, no capabilities, a new session (no
  terminal to inject into), and death with the server (`--die-with-parent`).

The network is shared with the machine: a chainlet reaches its dependencies through the gateway
and the world beyond, as on Baseten. What listens on loopback is guarded by credentials instead
(replicas answer only the gateway; docs/security.md).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
import shutil
import site
import subprocess
import sys
from collections.abc import Iterable, Sequence

# What `/etc` a replica sees: name resolution, TLS roots, users, time zone, the loader's cache.
# Nothing of the operator's own configuration (credentials, service files) is among them.
_ETC = (
    "resolv.conf",
    "hosts",
    "host.conf",
    "nsswitch.conf",
    "gai.conf",
    "services",
    "protocols",
    "passwd",
    "group",
    "localtime",
    "timezone",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "pki",
    "mime.types",
    "os-release",
    "debian_version",
    "fonts",
    "magic",
    "mailcap",
)
# System trees, read-only. On merged-/usr systems the top-level ones are symlinks into /usr.
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/sys")


class SandboxUnavailable(ValueError):
    """The sandbox was required and cannot run here (a reason to refuse to start)."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """One deployment's view of the filesystem."""

    data_dir: pathlib.Path
    read_only: tuple[pathlib.Path, ...]
    writable: tuple[pathlib.Path, ...]
    workdir: pathlib.Path


def bwrap() -> str | None:
    return shutil.which("bwrap")


@functools.cache
def problem() -> str | None:
    """None when the sandbox works on this machine, else why not (checked once, by running it)."""
    if not sys.platform.startswith("linux"):
        return f"the replica sandbox needs Linux (this is {sys.platform})"
    exe = bwrap()
    if exe is None:
        return "bubblewrap (`bwrap`) is not installed: apt-get install bubblewrap"
    argv = [exe, *_namespaces(), *_system_binds(), "--", "/bin/true"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap cannot start: {exc}"
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        return "bubblewrap cannot create namespaces here" + (f": {said[-1]}" if said else "")
    return None


MODES = ("auto", "required", "off")


def decide(mode: str) -> bool:
    """Whether replicas run sandboxed under `--sandbox MODE`."""
    if mode not in MODES:
        raise ValueError(f"--sandbox is one of {', '.join(MODES)}, not {mode!r}")
    if mode == "off":
        return False
    why = problem()
    if why is None:
        return True
    if mode == "required":
        raise SandboxUnavailable(f"--sandbox required: {why}")
    return False


def command(argv: Sequence[str], layout: Layout) -> list[str]:
    """`argv` wrapped to run in the deployment's sandbox."""
    exe = bwrap()
    if exe is None:
        raise SandboxUnavailable("bubblewrap is not installed")
    args = [exe, *_namespaces(), *_system_binds()]
    data_dir = layout.data_dir.resolve()
    for path in _dedupe(_python_roots()):
        # Roots inside the data dir (a chainlet environment) come with the layout, or not at all.
        if path.exists() and not path.resolve().is_relative_to(data_dir):
            args += ["--ro-bind", str(path), str(path)]
    # Whatever bind above may hold the data dir, it is empty in here, but for the deployment's
    # own parts of it, bound on top.
    args += ["--tmpfs", str(data_dir)]
    for path in _dedupe(layout.read_only):
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    for path in layout.writable:
        path.mkdir(parents=True, exist_ok=True)
        args += ["--bind", str(path), str(path)]
    args += ["--chdir", str(layout.workdir), "--", *argv]
    return args


def _namespaces() -> list[str]:
    return [
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--tmpfs",
        "/var/tmp",
        "--tmpfs",
        "/run",
    ]


def _system_binds() -> list[str]:
    args: list[str] = []
    for top in _SYSTEM:
        path = pathlib.Path(top)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), top]
        elif path.is_dir():
            args += ["--ro-bind", top, top]
    for name in _ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    # GPUs of an instance type: the NVIDIA device nodes (which GPUs a replica uses is still
    # CUDA_VISIBLE_DEVICES, runtime/gpus.py).
    for node in sorted(pathlib.Path("/dev").glob("nvidia*")):
        args += ["--dev-bind-try", str(node), str(node)]
    return args


def _python_roots() -> list[pathlib.Path]:
    """Where the server's Python and its packages live: the replica host runs chainyard and
    truss_chains from there (chainlet environments add to it, runtime/python_envs.py)."""
    roots = [sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()]
    roots += [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    import chainyard

    own = pathlib.Path(chainyard.__file__).resolve().parents[1]
    roots.append(str(own))
    return [pathlib.Path(p) for p in roots if p]


def interpreter_root(python: str) -> pathlib.Path:
    """The installation an interpreter belongs to (`<prefix>/bin/python` -> `<prefix>`)."""
    return pathlib.Path(python).resolve().parents[1]


def _dedupe(paths: Iterable[pathlib.Path]) -> list[pathlib.Path]:
    seen: set[pathlib.Path] = set()
    out = []
    for path in paths:
        if path not in seen:
            seen.add(path)
            out.append(path)
    return out
