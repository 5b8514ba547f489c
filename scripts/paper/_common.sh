# Sourced by scripts/paper/*.sh: the repository root, the interpreter ($PYTHON, default python), the world ($WORLD:
# toy, the default; sd; tiny for tests) and the check of the arguments that WORLD=sd needs.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python}"
WORLD="${WORLD:-toy}"

# require_flags SCRIPT "ALL ARGUMENTS" FLAG...: with WORLD=sd, stop with one error line unless every FLAG was given
require_flags() {
  local script="$1" given=" $2 " flag
  shift 2
  [ "$WORLD" = sd ] || return 0
  for flag in "$@"; do
    case "$given" in
      *" $flag "* | *" $flag="*) ;;
      *) echo "error: WORLD=sd bash scripts/paper/$script needs $flag (the comment at the top of" \
              "scripts/paper/$script lists what to pass)" >&2
         exit 2 ;;
    esac
  done
}
