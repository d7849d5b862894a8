#!/bin/sh
# Makes the source rock of a rockspec with a git source, offline, from the
# working tree:  sh rockspec/pack.sh ROCKSPEC OUTDIR   (`make rock` runs it).
#
# `luarocks pack` clones source.url at source.tag (or branch). Here git is
# told, through GIT_CONFIG_* in the environment (git >= 2.31), to clone that
# URL from a throwaway repository instead (url.<local>.insteadOf): the working
# tree as `git add -A` would see it (tracked files plus untracked ones git does
# not ignore), committed and tagged as the rockspec says. So the rock is what
# `luarocks pack` makes from the real tag, and the rockspec inside it is the
# one in rockspec/, unchanged. Nothing is written to the repository.
set -eu

if [ $# -ne 2 ]; then
  echo "usage: sh rockspec/pack.sh ROCKSPEC OUTDIR" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
rockspec=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
mkdir -p "$2"
out=$(cd "$2" && pwd)

# source.url (without LuaRocks' "git+" prefix) and source.tag or branch.
fields=$(lua5.4 - "$rockspec" <<'EOF'
local env = {}
assert(loadfile(arg[1], "t", env))()
local src = env.source
io.write(src.url:gsub("^git%+", ""), " ", src.tag or src.branch or "main", " ",
  env.package, "-", env.version, "\n")
EOF
)
set -- $fields
url=$1 ref=$2 name_version=$3
case "$url" in
  https://*|http://*|git://*|ssh://*|file://*) ;;
  *) echo "pack: $rockspec: not a git source ($url)" >&2; exit 1 ;;
esac

# A release is packed from its tagged commit (doc/releasing.md): say so
# when the repository has no such tag, or the working tree is not it.
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  if ! tagged=$(git -C "$root" rev-parse -q --verify "refs/tags/$ref^{commit}"); then
    echo "pack: note: this repository has no tag $ref; the rock is packed from the working tree" \
      "(to release: tag the release commit first, see doc/releasing.md)" >&2
  elif [ "$tagged" != "$(git -C "$root" rev-parse HEAD)" ] || [ -n "$(git -C "$root" status --porcelain)" ]; then
    echo "pack: note: the working tree is not the commit tagged $ref; the rock holds the working tree" >&2
  fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# The working tree, copied file by file (a tracked file deleted from the
# working tree is left out, as `git add -A` would). Outside a git checkout
# (an unpacked tarball, say) everything but the build output is copied, and
# the copied .gitignore files leave out the rest at `git add -A` below.
mkdir "$tmp/repo"
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$root" && git ls-files -z --cached --others --exclude-standard) |
    (cd "$root" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done; true' sh) |
    (cd "$root" && tar --null -T - -cf -) | tar -xf - -C "$tmp/repo"
else
  (cd "$root" && tar --exclude=./.git --exclude=./build --exclude=./doc --exclude=node_modules -cf - .) |
    tar -xf - -C "$tmp/repo"
fi

git -C "$tmp/repo" init -q -b pack
git -C "$tmp/repo" add -A
git -C "$tmp/repo" -c user.name=pack -c user.email=pack@localhost \
  commit -q --no-verify -m "$name_version from the working tree"
git -C "$tmp/repo" tag "$ref"

mkdir "$tmp/out"
(
  cd "$tmp/out"
  GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0="url.file://$tmp/repo.insteadOf" \
    GIT_CONFIG_VALUE_0="$url" luarocks pack "$rockspec" >"$tmp/pack.log" 2>&1 ||
    { cat "$tmp/pack.log" >&2; exit 1; }
)
mv "$tmp/out/$name_version.src.rock" "$out/"
echo "$out/$name_version.src.rock"
