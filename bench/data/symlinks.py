"""Files that resolve outside the dataset root (``data.symlinks``).

A dataset on shared storage can hold a symlink (or a ``..`` path) that leads anywhere; what the
harness reads must come from the root the user named, or be followed on purpose:

* ``refuse`` (default): an image that resolves outside the root is left out and listed
  (``symlinks_refused`` in the data report); a CSV or annotation file outside it is an error,
  since nothing can be labelled without it.
* ``error``: any such file stops the run with a one-line error naming it.
* ``follow``: read it anyway; images followed are listed (``symlinks_followed``).

Links that stay inside the root are ordinary files.
"""

from __future__ import annotations

import os

from bench.errors import BenchError

SYMLINK_POLICIES = ("refuse", "error", "follow")


def check_policy(policy: str) -> str:
    if policy not in SYMLINK_POLICIES:
        raise BenchError(f"data.symlinks={policy!r} is not a policy: use one of {', '.join(SYMLINK_POLICIES)}")
    return policy


class RootGuard:
    """Where files really lead, relative to one root. A plain file's real path is its folder's
    real path plus its name, so only folders and links are resolved (``os.path.realpath`` on
    every file was most of loading FracAtlas: 8,000 calls, 90,000 lstat)."""

    def __init__(self, root: str | os.PathLike):
        self.root = root
        self.base = os.path.realpath(root)
        self._dirs: dict[str, str] = {}

    def outside_target(self, path: str | os.PathLike) -> str | None:
        """Where ``path`` really leads when that is outside the root, else None."""
        full = os.path.abspath(path)  # also folds "..": a name is never ".." below
        folder, name = os.path.split(full)
        if os.path.islink(full):
            target = os.path.realpath(full)
        else:
            real_folder = self._dirs.get(folder)
            if real_folder is None:
                real_folder = self._dirs[folder] = os.path.realpath(folder)
            target = os.path.join(real_folder, name)
        if target == self.base or target.startswith(self.base.rstrip(os.sep) + os.sep):
            return None
        return target


def outside_target(path: str | os.PathLike, root: str | os.PathLike | RootGuard) -> str | None:
    """Where ``path`` really leads when that is outside ``root`` (resolved), else None."""
    guard = root if isinstance(root, RootGuard) else RootGuard(root)
    return guard.outside_target(path)


def _message(path: str | os.PathLike, target: str, root: str | os.PathLike | RootGuard, policy: str) -> str:
    base = root.base if isinstance(root, RootGuard) else os.path.realpath(root)
    return (f"{path}: resolves to {target}, outside the dataset root {base} "
            f"(data.symlinks={policy}): copy the file into the dataset, or set data.symlinks=follow to read it")


def check_metadata_file(path: str | os.PathLike, root: str | os.PathLike | RootGuard, policy: str) -> None:
    """A CSV or annotation file: outside the root is an error unless the policy is ``follow``."""
    target = outside_target(path, root)
    if target is not None and check_policy(policy) != "follow":
        raise BenchError(_message(path, target, root, policy))


def screen_images(paths: list[str], ids: list[str], root: str | os.PathLike | RootGuard,
                  policy: str) -> tuple[list[bool], list[dict], list[dict]]:
    """(keep flag per path, refused, followed); refused/followed entries are {image_id, target}."""
    check_policy(policy)
    guard = root if isinstance(root, RootGuard) else RootGuard(root)
    keep, refused, followed = [], [], []
    for path, image_id in zip(paths, ids):
        target = guard.outside_target(path)
        if target is None:
            keep.append(True)
            continue
        if policy == "error":
            raise BenchError(_message(path, target, guard, policy))
        entry = {"image_id": image_id, "target": target}
        if policy == "follow":
            followed.append(entry)
            keep.append(True)
        else:
            refused.append(entry)
            keep.append(False)
    return keep, refused, followed
