# ldmesh: `make` builds build/{libldmesh.so,ldmesh-run,ldmeshd,ldmeshctl}.
# `make test` and `make demo` install what is missing first (`make deps`).

PREFIX ?= /usr/local
CC ?= cc
BUILD ?= build
SAN ?= 0

WARN := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CFLAGS ?= -O2 -g
CFLAGS += $(WARN) -std=gnu11 -D_GNU_SOURCE -Iinclude -Idaemon -fno-strict-aliasing
ifeq ($(SAN),1)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

SHIM_SRC := $(wildcard shim/*.c)
# The daemon's subsystems, one folder each (docs/architecture.md); daemon/ctl/
# is the CLI, built apart.
DAEMON_DIRS := util loop config identity transport policy proto telemetry proxy control
DAEMON_SRC := daemon/ldmeshd.c daemon/workers.c $(foreach d,$(DAEMON_DIRS),$(wildcard daemon/$(d)/*.c))
DAEMON_HDR := $(wildcard daemon/*.h daemon/*/*.h)
CTL_SRC := $(wildcard daemon/ctl/*.c) daemon/util/spiffe.c

SHIM_OBJ := $(SHIM_SRC:%.c=$(BUILD)/obj/%.o)
DAEMON_OBJ := $(DAEMON_SRC:%.c=$(BUILD)/obj/%.o)
CTL_OBJ := $(CTL_SRC:%.c=$(BUILD)/obj/%.o)

# ldmesh-run is static and glibc-free (musl), so it runs inside any image;
# without musl-tools (make deps installs it) it is linked statically with
# the system libc instead.
RUN_SRC := $(wildcard shim/run/*.c) shim/wire.c shim/exclude.c shim/preamble.c
MUSL_CC ?= $(shell command -v musl-gcc >/dev/null 2>&1 && echo musl-gcc || echo $(CC))
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)

DAEMON_LIBS := -luring -lconfig -lssl -lcrypto -lnghttp2 -lcares -lpthread -lm
# inject and webhook: libyaml and jansson for manifests, OpenSSL for HTTPS.
CTL_LIBS := -lyaml -ljansson -lssl -lcrypto -lpthread
TEST_PROGS := $(patsubst tests/e2e/progs/%.c,$(BUILD)/progs/%,$(wildcard tests/e2e/progs/*.c))
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(wildcard tests/unit/test_*.c))

.PHONY: all deps test test-repeat test-unit check e2e lint test-e2e demo install clean asan bench bench-quick fuzz soak \
	format-check

all: $(BUILD)/libldmesh.so $(BUILD)/ldmesh-run $(BUILD)/ldmeshd $(BUILD)/ldmeshctl $(TEST_PROGS)

$(BUILD)/obj/shim/%.o: shim/%.c $(wildcard shim/*.h include/ldmesh/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -fvisibility=hidden -c $< -o $@

$(BUILD)/obj/%.o: %.c $(DAEMON_HDR) $(wildcard include/ldmesh/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libldmesh.so: $(SHIM_OBJ) shim/libldmesh.map
	$(CC) -shared -Wl,--version-script=shim/libldmesh.map -Wl,-z,now $(LDFLAGS) \
		-o $@ $(SHIM_OBJ) -ldl -lpthread

# musl has no kernel headers of its own: give it linux/ and asm/ only.
$(BUILD)/kh/.stamp:
	@mkdir -p $(BUILD)/kh
	ln -sfn /usr/include/linux $(BUILD)/kh/linux
	ln -sfn /usr/include/$(MULTIARCH)/asm $(BUILD)/kh/asm
	ln -sfn /usr/include/asm-generic $(BUILD)/kh/asm-generic
	@touch $@

$(BUILD)/ldmesh-run: $(RUN_SRC) $(wildcard shim/run/*.h) shim/wire.h shim/exclude.h \
		$(wildcard include/ldmesh/*.h) $(BUILD)/kh/.stamp
	$(MUSL_CC) -static -O2 -g $(WARN) -std=gnu11 -D_GNU_SOURCE -Iinclude -Ishim \
		-idirafter $(BUILD)/kh -o $@ $(RUN_SRC)

# -rdynamic exports ldmeshd_is_daemon, which tells a preloaded shim to stay off.
$(BUILD)/ldmeshd: $(BUILD)/obj/daemon/main.o $(DAEMON_OBJ)
	$(CC) $(LDFLAGS) -rdynamic -o $@ $^ $(DAEMON_LIBS)

$(BUILD)/ldmeshctl: $(CTL_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(CTL_LIBS)

$(BUILD)/progs/%: tests/e2e/progs/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< -lpthread

# Unit tests also get the code the shim shares with ldmesh-run, and find files
# of the tree (docs/configuration.md) under LDM_SOURCE_DIR.
SHARED_SHIM_OBJ := $(BUILD)/obj/shim/exclude.o $(BUILD)/obj/shim/wire.o
UNIT_CFLAGS := -Ishim -DLDM_SOURCE_DIR='"$(CURDIR)"' -DLDM_BUILD_DIR='"$(CURDIR)/$(BUILD)"'

$(BUILD)/unit/%: tests/unit/%.c $(DAEMON_OBJ) $(SHARED_SHIM_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(UNIT_CFLAGS) $(LDFLAGS) -o $@ $< $(DAEMON_OBJ) $(SHARED_SHIM_OBJ) \
		$(DAEMON_LIBS) -lcmocka

# ldmeshctl's Kubernetes code has its own unit test, with the CLI's libraries.
INJECT_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,daemon/ctl/inject.c daemon/ctl/inject_conf.c \
	daemon/ctl/kube_yaml.c daemon/ctl/kube_patch.c daemon/util/spiffe.c)
$(BUILD)/unit/test_inject: tests/unit/test_inject.c $(INJECT_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(UNIT_CFLAGS) $(LDFLAGS) -o $@ $< $(INJECT_OBJ) $(CTL_LIBS) -lcmocka

asan:
	$(MAKE) BUILD=build-asan SAN=1 all

deps:
	@ci/deps.sh

test: deps
	$(MAKE) format-check
	$(MAKE) lint
	$(MAKE) all
	$(MAKE) asan
	ci/test.sh

# The fast target: unit tests only (seconds).
check: test-unit

# The pod tests alone, all three modes (needs root).
e2e: all asan
	/usr/bin/python3 -m pytest -q tests/e2e

# cppcheck from Debian; CI runs it as part of make test.
lint:
	@cppcheck --quiet --enable=warning,portability --inline-suppr --error-exitcode=1 --library=ci/jansson.cfg \
		-I include -I daemon -I shim --std=c11 -D_GNU_SOURCE daemon shim \
		&& echo "lint: ok"

# Flake hunt: the e2e suite N times in all three modes, failures per test.
N ?= 10
test-repeat: deps
	$(MAKE) all
	$(MAKE) asan
	ci/test-repeat.py $(N)

test-unit: all $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; $$t; done
	ci/layering.py $(BUILD)

demo: deps
	$(MAKE) all
	ci/demo.sh

# Benchmarks report, they never assert (docs/benchmarks.md).
bench: deps
	$(MAKE) all
	ci/bench.sh

bench-quick: deps
	$(MAKE) all
	ci/bench.sh --quick

# libFuzzer targets for every parser fed from outside (docs/reliability.md).
fuzz: deps
	ci/fuzz.sh

# Mixed load for SOAK_SECONDS (default 600); RSS and fd slopes must be flat.
soak: deps
	$(MAKE) all
	ci/soak.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/ldmesh $(DESTDIR)$(PREFIX)/share/ldmesh
	install -m 0755 $(BUILD)/ldmeshd $(BUILD)/ldmeshctl $(BUILD)/ldmesh-run $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(BUILD)/libldmesh.so $(DESTDIR)$(PREFIX)/lib/ldmesh/
	install -m 0644 conf/ldmesh.conf $(DESTDIR)$(PREFIX)/share/ldmesh/

FORMAT_SRC := $(wildcard shim/*.[ch] shim/run/*.[ch] daemon/*.[ch] daemon/*/*.[ch] \
	include/ldmesh/*.h tests/unit/*.c tests/e2e/progs/*.[ch] tests/fuzz/*.[ch])

format-check:
	@clang-format --dry-run --Werror $(FORMAT_SRC) && echo "format-check: ok"

clean:
	rm -rf build build-asan
