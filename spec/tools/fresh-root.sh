#!/bin/sh
# Runs the README's two commands, `make demo` then `make test`, as a new
# user would: in a fresh, minimal Debian 12 root (debootstrap minbase with
# git, make and gcc only), on a clone of this checkout's committed HEAD in
# /root/project, where only root can read it. Nothing of the host goes in
# but its extra CA certificates (so the package archives answer as they do
# here) and its DNS configuration.
#
#   sh spec/tools/fresh-root.sh        # as root; .ci/run calls it
#
# The base root is made once and kept in CERCA_FRESH_BASE (default
# /var/cache/cerca-fresh-root); each run lays an overlay on it, so every run
# starts clean. Logs go to build/fresh-root/. Exits non-zero when a command
# failed, and ends with the suite's own "N passed, N failed" line.
set -u
cd "$(dirname "$0")/../.."
project=$(pwd)
base=${CERCA_FRESH_BASE:-/var/cache/cerca-fresh-root}
logs=$project/build/fresh-root
mkdir -p "$logs"

say() { echo "fresh-root: $*"; }

if [ "$(id -u)" != 0 ]; then
  say "needs root (debootstrap, mount, chroot)"
  exit 2
fi

if [ ! -x "$base/usr/bin/make" ]; then
  if ! command -v debootstrap >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1
  fi
  say "making the base root in $base (once)"
  rm -rf "$base.tmp"
  mkdir -p "$base.tmp"
  if ! debootstrap --variant=minbase --include=ca-certificates,git,make,gcc,libc6-dev bookworm \
      "$base.tmp" > "$logs/debootstrap.log" 2>&1; then
    rm -rf "$base.tmp"
    say "cannot make a Debian 12 root (see $logs/debootstrap.log)"
    exit 3
  fi
  rm -rf "$base"
  mv "$base.tmp" "$base"
fi

work=$(mktemp -d /tmp/cerca-fresh-root.XXXXXX)
root=$work/root
mkdir -p "$work/upper" "$work/overlay-work" "$root"
if ! mount -t overlay overlay -o "lowerdir=$base,upperdir=$work/upper,workdir=$work/overlay-work" "$root"; then
  rmdir "$root" "$work/upper" "$work/overlay-work" "$work"
  say "cannot mount an overlay on $base"
  exit 3
fi
cleanup() {
  for m in dev/pts dev proc; do umount "$root/$m" 2>/dev/null; done
  umount "$root" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
cp /etc/resolv.conf "$root/etc/resolv.conf"
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null 2>&1
fi
chmod 700 "$root/root"
if ! git clone -q "$project" "$root/root/project"; then
  say "cannot clone $project"
  exit 3
fi

# A user's shell: a clean environment, as root, in the clone.
inside() {
  chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb DEBIAN_FRONTEND=noninteractive \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    sh -c "cd /root/project && $1"
}

say "make demo (log: $logs/demo.log)"
inside "make demo" > "$logs/demo.log" 2>&1
demo=$?
say "make demo exit $demo"
tail -n 5 "$logs/demo.log"
say "make test (log: $logs/test.log)"
inside "make test" > "$logs/test.log" 2>&1
tests=$?
grep -E '^== |successes|FAILED|^(memcheck|sanitizers):' "$logs/test.log"
say "make test exit $tests"
if [ "$tests" -ne 0 ]; then
  grep -E -A12 '^(Failure|Error) ' "$logs/test.log" | head -n 80
fi
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$logs/test.log" | tail -n 1)
[ -n "$summary" ] || summary="0 passed, 1 failed"
[ "$demo" -eq 0 ] || summary=$(echo "$summary" | awk '{ print $1 " passed, " $3 + 1 " failed" }')
echo
echo "$summary"
[ "$demo" -eq 0 ] && [ "$tests" -eq 0 ]
