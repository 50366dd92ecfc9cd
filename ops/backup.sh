#!/usr/bin/env bash
# Backs up ModelHub's state: the database, then the model files (media).
#
#   ops/backup.sh TARGET_DIR      # writes TARGET_DIR/modelhub-YYYYmmddTHHMMSSZ/
#
# Run from the project root with the app's environment (DATABASE_URL,
# MODELHUB_MEDIA_ROOT, or MODELHUB_STORAGE=s3 and its bucket). Safe while the service runs. The database is copied
# first: model files never change after upload, so every file the copy
# refers to is then in the media archive (a file uploaded in between is a
# harmless extra). The backup directory holds database.sqlite3 or
# database.dump, media.tar.gz and manifest.json. Restore with ops/restore.sh.
set -euo pipefail

PYTHON=${PYTHON:-.venv/bin/python}
umask 077 # password hashes and API tokens are in the database copy
[[ $# -eq 1 && $1 != -* ]] || { echo "usage: $0 TARGET_DIR" >&2; exit 2; }
media=${MODELHUB_MEDIA_ROOT:-media}

# shellcheck source=ops/database.sh
source "$(dirname "$0")/database.sh"

final="$1/modelhub-$(date -u +%Y%m%dT%H%M%SZ)"
work="$final.partial" # renamed when complete: a half-written backup never looks whole
mkdir -p "$1"
mkdir "$work"
trap 'rm -rf "$work"' EXIT

# 1. The database.
case $kind in
sqlite3)
  db_file=database.sqlite3
  # sqlite3's online backup API reads one consistent snapshot, WAL included,
  # while gunicorn keeps writing; cp of a live WAL database can be torn.
  "$PYTHON" - "$(db_setting NAME)" "$work/$db_file" <<'EOF'
import os, sqlite3, sys
source, target = sys.argv[1:]
if not os.path.isfile(source):
    sys.exit(f"backup: no SQLite database at {source}")
src, dst = sqlite3.connect(source, timeout=30), sqlite3.connect(target)
src.backup(dst)
check = dst.execute("PRAGMA quick_check").fetchone()[0]
if check != "ok":
    sys.exit(f"backup: the copy of {source} fails quick_check: {check}")
EOF
  ;;
postgresql)
  db_file=database.dump
  pg_dump --format=custom --file="$work/$db_file" --dbname="$DATABASE_URL"
  ;;
*)
  echo "backup: unsupported database engine $engine" >&2
  exit 1
  ;;
esac

# 2. The model files. tar exits 1 when a file changes or vanishes while it
# is read: an upload in progress (not in the copy) or a version deleted
# since step 1, whose absence ops/restore.sh's verification will report.
# From an object store (MODELHUB_STORAGE=s3) every version's file is
# downloaded into the same archive: the backup then holds the files
# themselves and restores without the bucket (a deleted version's object is
# gone from the bucket; keep bucket versioning on if you want more).
if [[ ${MODELHUB_STORAGE:-local} == s3 ]]; then
  mkdir "$work/files"
  "$PYTHON" manage.py storefiles export "$work/files" >&2
  tar -C "$work/files" -czf "$work/media.tar.gz" .
  rm -rf "$work/files"
elif [[ -d $media ]]; then
  tar -C "$media" -czf "$work/media.tar.gz" . || {
    status=$?
    ((status == 1)) || exit "$status"
    echo "backup: warning: media files changed while being archived" >&2
  }
else
  echo "backup: warning: no media directory at $media" >&2
  tar -czf "$work/media.tar.gz" --files-from=/dev/null
fi

# 3. The manifest: what was taken, from which schema, with archive checksums.
"$PYTHON" - "$work" "$kind" "$db_file" <<'EOF'
import datetime, hashlib, json, os, pathlib, subprocess, sys, tarfile, tomllib

work, kind, db_file = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]

def sha256(path):
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()

# Last applied migration per app: the schema the database copy needs.
sql = "SELECT app, MAX(name) FROM django_migrations GROUP BY app ORDER BY app"
if kind == "sqlite3":
    import sqlite3
    with sqlite3.connect(work / db_file) as conn:
        migrations = dict(conn.execute(sql).fetchall())
else:
    import psycopg
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        migrations = dict(conn.execute(sql).fetchall())

with tarfile.open(work / "media.tar.gz") as tar:
    files = sum(member.isfile() for member in tar)
commit = subprocess.run(
    ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
).stdout.strip()
manifest = {
    "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    "database": "sqlite" if kind == "sqlite3" else "postgresql",
    "app_version": tomllib.loads(pathlib.Path("pyproject.toml").read_text())[
        "project"
    ]["version"],
    "git_commit": commit or None,
    "migrations": migrations,
    "media_files": files,
    "model_store": os.environ.get("MODELHUB_STORAGE") or "local",
    "sha256": {name: sha256(work / name) for name in (db_file, "media.tar.gz")},
}
(work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
EOF

mv "$work" "$final"
echo "$final"
