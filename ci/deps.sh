#!/bin/sh
# Installs the Debian packages ldmesh needs to build and test; quiet and
# quick when everything is already there.
set -e
PKGS="build-essential pkg-config libssl-dev libconfig-dev liburing-dev libnghttp2-dev libcmocka-dev
      python3 python3-pytest iproute2 procps psmisc curl wget openssl
      nginx-light redis-server redis-tools openssh-server openssh-client nodejs
      tcpdump clang-format clang tmux valgrind wrk haproxy prometheus
      socat nghttp2-client nghttp2-server python3-grpcio python3-h2 python3-cryptography python3-websockets
      python3-pyftpdlib cppcheck golang-go busybox-static musl-tools
      libyaml-dev libjansson-dev python3-yaml python3-jsonpatch systemd libc-ares-dev dnsmasq-base"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# nodejs may come from another repository with its own package name.
case "$missing" in *nodejs*) command -v node >/dev/null && missing=$(echo "$missing" | sed 's/ nodejs//') ;; esac
# npm ships with nodesource's nodejs; Debian's nodejs needs the npm package.
command -v npm >/dev/null || missing="$missing npm"
if [ -n "$missing" ]; then
echo "deps: installing$missing"
[ "$(id -u)" = 0 ] || { echo "deps: run as root to install:$missing" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Keep package maintainer scripts from starting nginx, redis or sshd services.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
apt-get install -y -qq --no-install-recommends $missing
rm -f /usr/sbin/policy-rc.d
fi

# The Kubernetes tests validate manifests with kubernetes-models (JSON
# schemas generated from Kubernetes' OpenAPI), kept out of the tree in
# build/npm (tests/kube/validate.mjs).
NPM_DIR="$(dirname "$0")/../build/npm"
KM_VERSION=5.1.0
if ! grep -qs "\"version\": \"$KM_VERSION\"" "$NPM_DIR/node_modules/kubernetes-models/package.json"; then
	echo "deps: npm install kubernetes-models@$KM_VERSION into build/npm"
	mkdir -p "$NPM_DIR"
	npm install --prefix "$NPM_DIR" --no-audit --no-fund --loglevel=error \
		"kubernetes-models@$KM_VERSION"
fi
