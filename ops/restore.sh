#!/usr/bin/env bash
# Restores a backup made by ops/backup.sh into the current DATABASE_URL and
# MODELHUB_MEDIA_ROOT (or, with MODELHUB_STORAGE=s3, its bucket), then checks every model version's file against its
# recorded sha256.
#
#   ops/restore.sh [--force] BACKUP_DIR
#
# Run from the project root with the app's environment, as the user the
# service runs as, the service stopped.
# It refuses a target that holds data (a SQLite file, tables in the
# PostgreSQL database, files in the media directory) unless --force: then
# PostgreSQL objects are dropped and replaced, and the old SQLite file and
# media directory are kept aside as *.before-restore-TIMESTAMP.
set -euo pipefail

PYTHON=${PYTHON:-.venv/bin/python}
force=no
if [[ ${1:-} == --force ]]; then force=yes && shift; fi
[[ $# -eq 1 && $1 != -* ]] || { echo "usage: $0 [--force] BACKUP_DIR" >&2; exit 2; }
backup=$1
media=${MODELHUB_MEDIA_ROOT:-media}
stamp=$(date -u +%Y%m%dT%H%M%SZ)

# shellcheck source=ops/database.sh
source "$(dirname "$0")/database.sh"
case $kind in
sqlite3) db_file=$(db_setting NAME) ;;
postgresql) ;;
*) echo "restore: unsupported database engine $engine" >&2 && exit 1 ;;
esac

# 1. The backup is whole (archives match the manifest) and of this kind.
if [[ ! -f $backup/manifest.json ]]; then
  echo "restore: $backup has no manifest.json: not a backup made by ops/backup.sh" >&2
  exit 1
fi
"$PYTHON" - "$backup" "$kind" <<'EOF'
import hashlib, json, pathlib, sys

backup, kind = pathlib.Path(sys.argv[1]), sys.argv[2]
manifest = json.loads((backup / "manifest.json").read_text())
for name, expected in manifest["sha256"].items():
    digest = hashlib.sha256()
    with open(backup / name, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        sys.exit(f"restore: {backup / name} is damaged: sha256 differs from the manifest")
wanted = "sqlite" if kind == "sqlite3" else "postgresql"
if manifest["database"] != wanted:
    sys.exit(f"restore: a {manifest['database']} backup cannot go into {wanted}")
print(
    f"restore: the backup of {manifest['created_at']}, {manifest['media_files']} "
    f"media files, registry schema {manifest['migrations'].get('registry')}"
)
EOF

# 2. Refuse to overwrite data unless told to.
occupied=()
case $kind in
sqlite3) [[ -s $db_file ]] && occupied+=("database $db_file exists") ;;
postgresql)
  tables=$(psql "$DATABASE_URL" -Atc "SELECT count(*) FROM pg_tables
    WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
  ((tables == 0)) || occupied+=("database has $tables tables")
  ;;
esac
if [[ ${MODELHUB_STORAGE:-local} == s3 ]]; then
  stored=$("$PYTHON" manage.py shell --verbosity 0 -c '
from django.core.files.storage import default_storage
from registry import store
directories, files = default_storage.listdir("models")
if directories or files:
    print(store.describe())')
  [[ -n $stored ]] && occupied+=("model store $stored holds model files")
else
  [[ -d $media && -n $(ls -A "$media") ]] && occupied+=("media directory $media is not empty")
fi
if ((${#occupied[@]})) && [[ $force == no ]]; then
  printf 'restore: target not empty: %s\n' "${occupied[@]}" >&2
  echo "restore: refusing to overwrite it; pass --force to replace it" >&2
  exit 1
fi

# 3. The database.
kept=()
case $kind in
sqlite3)
  mkdir -p "$(dirname "$db_file")"
  # The backup's 0600 stays with the backup; the database gets the umask.
  cp --no-preserve=mode "$backup/database.sqlite3" "$db_file.restoring"
  # The old -wal/-shm go with the old file: left beside the restored one,
  # SQLite would replay them into it.
  for suffix in "" -wal -shm; do
    if [[ -e $db_file$suffix ]]; then
      mv "$db_file$suffix" "$db_file.before-restore-$stamp$suffix"
      kept+=("$db_file.before-restore-$stamp$suffix")
    fi
  done
  mv "$db_file.restoring" "$db_file"
  ;;
postgresql)
  pg_restore --clean --if-exists --no-owner --single-transaction \
    --dbname="$DATABASE_URL" "$backup/database.dump"
  ;;
esac

# 4. The model files: into the media directory, or uploaded by name to the
# object store (MODELHUB_STORAGE=s3), replacing same-named objects with --force.
if [[ ${MODELHUB_STORAGE:-local} == s3 ]]; then
  files=$(mktemp -d)
  tar -C "$files" -xzf "$backup/media.tar.gz"
  "$PYTHON" manage.py storefiles import "$files" $([[ $force == yes ]] && echo --force)
  rm -rf "$files"
else
  if [[ -d $media && -n $(ls -A "$media") ]]; then
    mv "$media" "$media.before-restore-$stamp"
    kept+=("$media.before-restore-$stamp")
  fi
  mkdir -p "$media"
  tar -C "$media" -xzf "$backup/media.tar.gz"
fi

# 5. Every version's file is there with its recorded sha256, read through
# the store it lives in. (Not `manage.py checkmodels`: it skips invalid
# versions, and loading every model in a preflight is slower than a hash.)
"$PYTHON" manage.py storefiles verify
if ((${#kept[@]})); then printf 'restore: kept what it replaced: %s\n' "${kept[@]}"; fi
