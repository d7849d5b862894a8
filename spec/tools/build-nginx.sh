#!/bin/sh
# build-nginx.sh OUT: an nginx with the Lua module and the NDK compiled in,
# the way OpenResty ships them, installed under OUT (OUT/sbin/nginx). The SDK's
# nginx specs run against it as well as against Debian's nginx, whose Lua
# module is loadable, so that both ways of having the module stay tested.
#
# The sources are the upstream tarballs Debian 12 itself builds from, fetched
# from Debian's archive and checked against pinned SHA-256 sums; LuaJIT is
# Debian's libluajit2 (as for the loadable module). Downloads are kept in
# build/nginx-src so that a rebuild does not fetch again.
set -eu

out=${1:?usage: build-nginx.sh OUT}
cache=build/nginx-src
archive=${CERCA_DEBIAN_POOL:-http://deb.debian.org/debian/pool/main}

# name  path in the archive  sha256
sources="
nginx-1.22.1 n/nginx/nginx_1.22.1.orig.tar.gz 9ebb333a9e82b952acd3e2b4aeb1d4ff6406f72491bab6cd9fe69f0dea737f31
lua-nginx-module-0.10.23 libn/libnginx-mod-http-lua/libnginx-mod-http-lua_0.10.23.orig.tar.gz aabd9907e8b7077c1b4cf4c1d0426e9b10885c5b0bfa87c85c3a97c33c40b503
ngx_devel_kit-0.3.2 libn/libnginx-mod-http-ndk/libnginx-mod-http-ndk_0.3.2.orig.tar.gz aa961eafb8317e0eb8da37eb6e2c9ff42267edd18b56947384e719b85188f58b
"

mkdir -p "$cache"
work=$(mktemp -d "${TMPDIR:-/tmp}/cerca-nginx.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "$sources" | while read -r name path sum; do
  [ -n "$name" ] || continue
  tarball=$cache/$(basename "$path")
  if ! echo "$sum  $tarball" | sha256sum -c --status 2>/dev/null; then
    echo "build-nginx: fetching $archive/$path"
    curl -q -fsSL --retry 3 -o "$tarball.part" "$archive/$path"
    if ! echo "$sum  $tarball.part" | sha256sum -c --status; then
      echo "build-nginx: $path does not match its pinned SHA-256; refusing it" >&2
      rm -f "$tarball.part"
      exit 1
    fi
    mv "$tarball.part" "$tarball"
  fi
  tar -xzf "$tarball" -C "$work"
  [ -d "$work/$name" ] || { echo "build-nginx: $tarball holds no $name/" >&2; exit 1; }
done

mkdir -p "$out"
out=$(cd "$out" && pwd)
log=$out/build.log
echo "build-nginx: building nginx 1.22.1 with lua-nginx-module 0.10.23 built in (log: $log)"
(
  cd "$work/nginx-1.22.1"
  # lua-nginx-module 0.10.23 speaks PCRE1 only (as Debian builds it).
  LUAJIT_LIB=$(pkg-config --variable=libdir luajit) \
  LUAJIT_INC=$(pkg-config --variable=includedir luajit) \
    ./configure --prefix="$out" --with-threads --with-http_ssl_module --without-pcre2 \
      --add-module=../ngx_devel_kit-0.3.2 --add-module=../lua-nginx-module-0.10.23
  make -j"$(nproc)"
  make install
) > "$log" 2>&1 || { tail -n 30 "$log" >&2; echo "build-nginx: failed; see $log" >&2; exit 1; }
"$out/sbin/nginx" -V 2>&1 | grep -q lua-nginx-module
echo "build-nginx: $out/sbin/nginx"
