# cerca-lua: build, test and demo. `make help` lists the targets.
#
# The C core is built once per Lua the rockspec claims:
#   build/lua5.X/cerca/core.so   (Lua 5.1, 5.2, 5.3, 5.4: Debian's liblua5.X-dev)
#   build/luajit/cerca/core.so   (LuaJIT / OpenResty, Lua 5.1 API)

LUA_INC_54  ?= /usr/include/lua5.4
LUA_INC_JIT ?= /usr/include/luajit-2.1
PREFIX      ?= /usr/local
LUA_VERSION ?= 5.4

CC      ?= cc
WARN     = -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wcast-qual \
           -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wundef
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c99 -fPIC -fvisibility=hidden $(WARN)
LDFLAGS += -shared
LIBS     = -lcurl -lcrypto -lpthread

# The Lua side (core.h) over the plain-C layers (no Lua inside).
SRC      = src/core.c src/names.c src/jdecode.c src/jencode.c src/session.c src/lmulti.c src/lhttp.c src/sys.c src/lcrypto.c src/ltext.c src/lwalk.c src/journal.c \
           src/http.c src/url.c src/headers.c src/crypto.c src/multi.c src/pid.c
HDR      = src/compat.h src/core.h src/http.h src/url.h src/headers.h src/crypto.h src/multi.h src/pid.h
# PUC Lua versions; LuaJIT is built apart (OpenResty's headers).
LUA_VERSIONS = 5.1 5.2 5.3 5.4
CORE_54  = build/lua5.4/cerca/core.so
CORE_JIT = build/luajit/cerca/core.so
CORES    = $(foreach v,$(LUA_VERSIONS),build/lua$(v)/cerca/core.so) $(CORE_JIT)
CORE_SAN = build/asan/cerca/core.so
LUA_SAN  = build/asan/lua-asan
FUZZERS  = build/fuzz/headers_fuzz build/fuzz/base64_fuzz build/fuzz/url_fuzz
FUZZ_CC  = clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc
SANITIZE = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_SECONDS ?= 60
# Test-only helper module (fork, waitpid, _exit) for the fork-safety specs.
POSIX_54  = build/lua5.4/spec_posix.so
POSIX_JIT = build/luajit/spec_posix.so
POSIX_SAN = build/asan/spec_posix.so
POSIXES   = $(foreach v,$(LUA_VERSIONS),build/lua$(v)/spec_posix.so) $(POSIX_JIT) $(POSIX_SAN)
# An nginx with the Lua module built in (as OpenResty's), for the nginx specs.
NGINX_BUILTIN = build/nginx-builtin/sbin/nginx

# Debian packages: what the build needs (the C core for each Lua, also
# all `make install` needs); what the demo and `make serve` add (the
# reference server: nginx with its Lua module, openssl for its
# certificates); and what the tests, the docs and the benchmarks add
# (`make deps` installs them all; `locales` for the charmaps localedef
# builds the test locales of a decimal comma from).
BUILD_PACKAGES = gcc libc6-dev make pkg-config \
                 lua5.4 liblua5.4-dev luajit2 libluajit2-5.1-dev \
                 lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev \
                 lua-cjson libcurl4-openssl-dev libssl-dev
DEMO_PACKAGES = $(BUILD_PACKAGES) curl openssl ca-certificates nginx libnginx-mod-http-lua
DEB_PACKAGES = $(DEMO_PACKAGES) \
               lua-busted lua-check luarocks lua-ldoc lua-discount \
               valgrind strace nodejs npm wrk \
               lua-curl lua-system python3-requests locales \
               libpcre3-dev zlib1g-dev \
               clang libclang-rt-14-dev

.PHONY: help deps deps-build deps-demo deps-docs build test demo serve install lint check-memory fuzz docs rock rock-build rock-install clean

# The release rockspec `make rock` packs, and where the rock goes.
ROCKSPEC ?= rockspec/cerca-0.1.0-1.rockspec
ROCK_DIR ?= build

help: ## list the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-z-]+:.*## /{printf "  make %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## install every missing Debian package the build, demo, tests and benchmarks use (apt-get; needs root)
	@sh spec/tools/deps.sh $(DEB_PACKAGES)

# Only what the build, or the demo, or the docs need.
deps-docs:
	@sh spec/tools/deps.sh lua5.4 lua-ldoc lua-discount

deps-build:
	@sh spec/tools/deps.sh $(BUILD_PACKAGES)

deps-demo:
	@sh spec/tools/deps.sh $(DEMO_PACKAGES)

build: deps-build $(CORES) ## build the C core for Lua 5.1 to 5.4 and LuaJIT

build/lua%/cerca/core.so: $(SRC) $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I/usr/include/lua$* $(SRC) -o $@ $(LDFLAGS) $(LIBS)

$(CORE_JIT): $(SRC) $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I$(LUA_INC_JIT) $(SRC) -o $@ $(LDFLAGS) $(LIBS)

test: deps build $(CORE_SAN) $(LUA_SAN) $(FUZZERS) $(POSIXES) $(NGINX_BUILTIN) ## lint, suite under Lua 5.1-5.4 and LuaJIT, memory checks, fuzz
	@sh spec/tools/run-tests.sh

demo: deps-demo build ## create a subscription against the bundled reference server
	@lua5.4 spec/server/with_server.lua env LUA_PATH="lua/?.lua;lua/?/init.lua;;" \
	  LUA_CPATH="build/lua5.4/?.so;;" lua5.4 examples/create.lua

serve: deps-demo build ## run the reference server on 127.0.0.1 until Enter or Ctrl-C, to try cerca by hand
	@lua5.4 spec/server/serve.lua

lint: deps ## luacheck the Lua, compile the C warning-free
	luacheck -q .
	$(CC) $(CFLAGS) -I$(LUA_INC_54) -fsyntax-only $(SRC)
	$(CC) $(CFLAGS) -I$(LUA_INC_JIT) -fsyntax-only $(SRC)

check-memory: deps build $(CORE_SAN) $(LUA_SAN) $(POSIX_54) $(POSIX_SAN) ## specs under valgrind, then under ASan+UBSan (C core, in-process)
	@sh spec/tools/check-memory.sh

$(CORE_SAN): $(SRC) $(HDR)
	@mkdir -p $(dir $@)
	$(CC) -O1 -g -std=c99 -fPIC -fvisibility=hidden $(SANITIZE) $(WARN) -I$(LUA_INC_54) $(SRC) -o $@ $(LDFLAGS) $(LIBS)

$(LUA_SAN): spec/tools/lua-asan.c
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(SANITIZE) $(WARN) -I$(LUA_INC_54) $< -o $@ -llua5.4 -lm -ldl

$(NGINX_BUILTIN): spec/tools/build-nginx.sh
	@sh spec/tools/build-nginx.sh build/nginx-builtin

build/lua%/spec_posix.so: spec/tools/posix.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I/usr/include/lua$* $< -o $@ $(LDFLAGS)

$(POSIX_JIT): spec/tools/posix.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I$(LUA_INC_JIT) $< -o $@ $(LDFLAGS)

$(POSIX_SAN): spec/tools/posix.c
	@mkdir -p $(dir $@)
	$(CC) -O1 -g -std=c99 -fPIC -fvisibility=hidden $(SANITIZE) $(WARN) -I$(LUA_INC_54) $< -o $@ $(LDFLAGS)

fuzz: deps $(FUZZERS) ## fuzz each C parser for FUZZ_SECONDS (default 60) apiece
	@sh spec/tools/fuzz.sh $(FUZZ_SECONDS)

build/fuzz/headers_fuzz: spec/fuzz/headers_fuzz.c src/headers.c src/headers.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) spec/fuzz/headers_fuzz.c src/headers.c -o $@

build/fuzz/base64_fuzz: spec/fuzz/base64_fuzz.c src/crypto.c src/crypto.h src/pid.c src/pid.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) spec/fuzz/base64_fuzz.c src/crypto.c src/pid.c -o $@ -lcrypto

build/fuzz/url_fuzz: spec/fuzz/url_fuzz.c src/url.c src/url.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) spec/fuzz/url_fuzz.c src/url.c -o $@ -lcurl

# What `make install` puts in place for LUA_VERSION: 5.1 means LuaJIT (as
# OpenResty uses it), 5.2 to 5.4 that PUC Lua.
INSTALL_CORE = $(if $(filter 5.1,$(LUA_VERSION)),$(CORE_JIT),build/lua$(LUA_VERSION)/cerca/core.so)
INSTALL_LUA  = $(if $(filter 5.1,$(LUA_VERSION)),luajit,lua$(LUA_VERSION))
BINDIR       = $(DESTDIR)$(PREFIX)/bin

install: build ## install into $(PREFIX) for Lua $(LUA_VERSION) (5.1: LuaJIT); versions live side by side
	install -d $(DESTDIR)$(PREFIX)/share/lua/$(LUA_VERSION)/cerca $(DESTDIR)$(PREFIX)/lib/lua/$(LUA_VERSION)/cerca
	install -m 0644 lua/cerca/*.lua $(DESTDIR)$(PREFIX)/share/lua/$(LUA_VERSION)/cerca/
	install -m 0755 $(INSTALL_CORE) $(DESTDIR)$(PREFIX)/lib/lua/$(LUA_VERSION)/cerca/core.so
	install -d $(BINDIR)
	sed '1s|^#!.*|#!/usr/bin/env $(INSTALL_LUA)|' bin/cerca > $(BINDIR)/cerca-$(LUA_VERSION)
	chmod 0755 $(BINDIR)/cerca-$(LUA_VERSION)
	@# `cerca` is the 5.4 command, or the first one installed.
	@if [ "$(LUA_VERSION)" = 5.4 ] || [ ! -e $(BINDIR)/cerca ]; then \
	  ln -sf cerca-$(LUA_VERSION) $(BINDIR)/cerca; echo "$(BINDIR)/cerca -> cerca-$(LUA_VERSION)"; fi

docs: deps-docs ## API reference of the public API (LDoc, config.ld) into build/doc/; fails on any LDoc warning
	@rm -rf build/doc
	@mkdir -p build
	@ldoc . > build/ldoc.log 2>&1; status=$$?; cat build/ldoc.log; \
	  if [ $$status -ne 0 ] || grep -q ':[0-9]*: ' build/ldoc.log; then echo "docs: LDoc warnings above" >&2; exit 1; fi
	@lua5.4 spec/tools/doc-links.lua build/doc

rock: ## source rock of $(ROCKSPEC) from the working tree, into $(ROCK_DIR)/ (offline)
	@sh rockspec/pack.sh $(ROCKSPEC) $(ROCK_DIR)

# Benchmarks (bench/README.md): the tables, printed and written to build/bench/results.md.
.PHONY: bench
BENCH_CEILING = build/bench/ceiling
BENCH_VERIFY_CEILING = build/bench/verify_ceiling
# The npm verifier, as bench/verify-node/package-lock.json pins it.
BENCH_NODE_MODULES = bench/verify-node/node_modules/.package-lock.json

bench: deps build $(BENCH_CEILING) $(BENCH_VERIFY_CEILING) $(BENCH_NODE_MODULES) ## the benchmark table: creates vs a plain C client, lua-curl, Node, Python, HTTPS, create_many and the batch command, cost (instructions, cache misses, system calls); delivery verification vs Node, Python, nginx (~8 min; BENCH_ONLY=verify: ~2 min)
	@env -u LUA_INIT -u LUA_INIT_5_4 lua5.4 bench/run.lua

$(BENCH_CEILING): bench/ceiling.c
	@mkdir -p $(dir $@)
	$(CC) -std=c99 -O2 -g -Wall -Wextra -Werror $< -o $@ -lcurl -lcrypto

$(BENCH_VERIFY_CEILING): bench/verify_ceiling.c
	@mkdir -p $(dir $@)
	$(CC) -std=c99 -O2 -g -Wall -Wextra -Werror $< -o $@ -lcrypto

$(BENCH_NODE_MODULES): bench/verify-node/package.json bench/verify-node/package-lock.json
	cd bench/verify-node && npm ci --no-audit --no-fund

# What LuaRocks runs (the rockspec's `make` build): `make rock-build` with
# its CC, CFLAGS, LIBFLAG and the include/library folders it found, then
# `make rock-install` with the rock's LUADIR and LIBDIR. The core is built in
# build/rock/, so `luarocks make` leaves the checkout as it found it. No
# -Werror here: a user's newer compiler must not fail an install.
ROCK_CORE = build/rock/cerca/core.so
LIBFLAG  ?= -shared
ROCK_INC  = $(foreach d,$(LUA_INCDIR) $(CURL_INCDIR) $(OPENSSL_INCDIR),-I$(d))
ROCK_LIB  = $(foreach d,$(CURL_LIBDIR) $(OPENSSL_LIBDIR),-L$(d))

rock-build: ## (LuaRocks) build the core with LuaRocks' variables, into build/rock/
	@mkdir -p $(dir $(ROCK_CORE))
	$(CC) $(CFLAGS) -std=c99 -fvisibility=hidden -Wall -Wextra $(ROCK_INC) $(SRC) \
	  -o $(ROCK_CORE) $(LIBFLAG) $(ROCK_LIB) $(LIBS)

rock-install: ## (LuaRocks) install the modules into the rock's LUADIR and LIBDIR
	install -d $(LUADIR)/cerca $(LIBDIR)/cerca
	install -m 0644 lua/cerca/*.lua $(LUADIR)/cerca/
	install -m 0755 $(ROCK_CORE) $(LIBDIR)/cerca/core.so

clean: ## remove build output
	rm -rf build
