# Sourced by ops/backup.sh and ops/restore.sh: which database DATABASE_URL
# names, parsed exactly as the app parses it.
# shellcheck shell=bash

db_setting() { # ENGINE or NAME of DATABASE_URL
  "$PYTHON" -c 'import os, sys, dj_database_url
url = os.environ.get("DATABASE_URL", "sqlite:///db.sqlite3")
print(dj_database_url.parse(url)[sys.argv[1]])' "$1"
}
engine=$(db_setting ENGINE)
# shellcheck disable=SC2034 # used by the scripts that source this file
kind=${engine##*.} # sqlite3 or postgresql
