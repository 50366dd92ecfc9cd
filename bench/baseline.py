"""Another revision of ModelHub beside the current tree, for a before/after
suite (``bench/suite.py --baseline REV``).

- ``baseline_checkout``: a detached git worktree of the revision under
  bench/.envs/ (git-ignored), reused while it stays at that commit;
- its site is made by ``harness.registered_site`` with that checkout's own
  ``manage.py``, so each side runs on the schema and code of its revision;
- ``head_info``: which commit the current tree is, and whether it has
  uncommitted changes (they are measured too).

The checkout runs with this virtualenv (sys.executable): only ModelHub's code
differs between the two sides, not the libraries.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness import ROOT

ENVS = ROOT / "bench" / ".envs"


def git(*args: str, cwd: Path = ROOT) -> str:
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout.strip()
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"git {' '.join(args)}: {exc.stderr.strip()}") from None


def registered_worktrees() -> dict[Path, str]:
    """This repository's worktrees: path -> HEAD sha."""
    out: dict[Path, str] = {}
    path = None
    for line in git("worktree", "list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            path = Path(line.split(" ", 1)[1]).resolve()
        elif line.startswith("HEAD ") and path is not None:
            out[path] = line.split(" ", 1)[1]
    return out


def baseline_checkout(rev: str) -> dict:
    """A detached worktree of ``rev`` in bench/.envs/baseline-<sha>: reused
    when it is there at that commit without local changes, else made with
    ``git worktree add --detach``. Other bench/.envs/baseline-* worktrees
    are removed with ``git worktree remove``, which refuses one with changes
    (it is then left, and said); a directory git does not know is left."""
    if rev.startswith("-"):
        raise SystemExit(f"--baseline {rev}: not a revision")
    try:
        sha = git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except SystemExit:
        raise SystemExit(f"--baseline {rev}: no such commit") from None
    directory = ENVS.resolve() / f"baseline-{sha[:12]}"
    git("worktree", "prune")
    registered = registered_worktrees()
    for stale in sorted(ENVS.glob("baseline-*")):
        if stale.resolve() == directory:
            continue
        if stale.resolve() not in registered:
            print(f"  {stale}: not a worktree of this repository, left", flush=True)
            continue
        try:
            git("worktree", "remove", str(stale))
            print(f"  removed the old baseline checkout {stale}", flush=True)
        except SystemExit as exc:
            print(f"  left {stale} ({exc})", flush=True)
    info = {"rev": rev, "sha": sha, "checkout": str(directory)}
    if directory in registered:
        clean = not git("status", "--porcelain", cwd=directory)
        if registered[directory] == sha and clean:
            return {**info, "reused": True}
        try:
            git("worktree", "remove", str(directory))
        except SystemExit as exc:
            raise SystemExit(
                f"{directory} has local changes or moved off {sha[:12]}; "
                f"look, then remove it ({exc})"
            ) from None
    elif directory.exists():
        raise SystemExit(f"{directory} is not a worktree of this repository")
    ENVS.mkdir(parents=True, exist_ok=True)
    git("worktree", "add", "--detach", str(directory), sha)
    return {**info, "reused": False}


def head_info() -> dict:
    """The current tree: HEAD's sha and whether tracked files differ from it
    (what is measured is the tree as it is, changes included)."""
    return {
        "sha": git("rev-parse", "HEAD"),
        "tracked_changes": bool(git("status", "--porcelain", "--untracked-files=no")),
    }
