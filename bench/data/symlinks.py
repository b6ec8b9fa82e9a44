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


def outside_target(path: str | os.PathLike, root: str | os.PathLike) -> str | None:
    """Where ``path`` really leads when that is outside ``root`` (resolved), else None."""
    target = os.path.realpath(path)
    base = os.path.realpath(root)
    if target == base or target.startswith(base.rstrip(os.sep) + os.sep):
        return None
    return target


def _message(path: str | os.PathLike, target: str, root: str | os.PathLike, policy: str) -> str:
    return (f"{path}: resolves to {target}, outside the dataset root {os.path.realpath(root)} "
            f"(data.symlinks={policy}): copy the file into the dataset, or set data.symlinks=follow to read it")


def check_metadata_file(path: str | os.PathLike, root: str | os.PathLike, policy: str) -> None:
    """A CSV or annotation file: outside the root is an error unless the policy is ``follow``."""
    target = outside_target(path, root)
    if target is not None and check_policy(policy) != "follow":
        raise BenchError(_message(path, target, root, policy))


def screen_images(paths: list[str], ids: list[str], root: str | os.PathLike, policy: str) -> tuple[list[bool], list[dict], list[dict]]:
    """(keep flag per path, refused, followed); refused/followed entries are {image_id, target}."""
    check_policy(policy)
    keep, refused, followed = [], [], []
    for path, image_id in zip(paths, ids):
        target = outside_target(path, root)
        if target is None:
            keep.append(True)
            continue
        if policy == "error":
            raise BenchError(_message(path, target, root, policy))
        entry = {"image_id": image_id, "target": target}
        if policy == "follow":
            followed.append(entry)
            keep.append(True)
        else:
            refused.append(entry)
            keep.append(False)
    return keep, refused, followed

