#!/bin/sh
# Installs the Debian packages named as arguments that are not installed yet.
# Node.js is checked by command, not package: some machines carry a vendor
# build of nodejs that bundles npm and conflicts with Debian's npm package.
set -eu

missing=""
for pkg in "$@"; do
  case "$pkg" in
    nodejs) command -v node >/dev/null 2>&1 && continue ;;
    npm) command -v npm >/dev/null 2>&1 && continue ;;
  esac
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "deps: missing Debian packages:$missing" >&2
  echo "deps: run 'make deps' as root, or install them with apt-get" >&2
  exit 1
fi

echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# npm comes with some nodejs builds: install nodejs first, then npm if still absent.
rest=$(echo "$missing" | sed 's/ npm\b//')
apt-get install -y -qq --no-install-recommends $rest >/dev/null
if echo "$missing" | grep -qw npm && ! command -v npm >/dev/null 2>&1; then
  apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
