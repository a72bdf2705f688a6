#!/usr/bin/env bash
# Provisions the real tools the end-to-end tests run: skopeo, notary-server,
# openssl, cosign, containerd (with ctr), dockerd and podman, the OCI
# peers crane, oras and regctl, and distribution's registry binary.
# `make test`, `make e2e` and `make bench` run it first; the
# tests never skip for a missing tool, so this either provides every tool or
# fails saying which one is missing and how to get it.
#
# For each tool, in this order:
#   1. the one on PATH (the cache's bin directory first), when acceptable:
#      skopeo >= 1.9; notary-server from the distribution's package or built
#      here (an upstream v0.7.0 build rejects delegation publishes, see below);
#      any openssl, containerd, dockerd and podman;
#   2. as root with apt-get (Debian, Ubuntu): the distribution's packages
#      skopeo, notary, openssl, containerd, docker.io and podman (one
#      `apt-get update`, then one install);
#   3. otherwise skopeo and notary-server are built from pinned module
#      versions with the Go toolchain (pure Go, CGO_ENABLED=0) into
#      $CNAB_AIRGAP_TOOLS_DIR/bin (default: .cache/tools/bin in the repository),
#      which the Makefile puts first on PATH. openssl, containerd, dockerd and
#      podman come only from packages (and the tests run those three as root).
#
# cosign is always exactly v2.6.5 and never comes from packages: the one on
# PATH when it is that version (checked with `go version -m`, which names the
# cosign module version the binary was built from, or an official release's
# `cosign version`), else built once into $CNAB_AIRGAP_TOOLS_DIR/bin from the
# module tools/cosign, whose go.mod and go.sum pin cosign and every dependency
# (like tools/lint for golangci-lint: `go build` in that module fetches only
# the listed module versions; about 7 minutes on 2 cores; a failed build is
# retried twice). That build is redone when tools/cosign/go.mod or go.sum is
# newer than it, as make does for golangci-lint.
#
# crane, oras and regctl are always the versions the module tools/peers pins
# (go-containerregistry v0.22.1, oras v1.3.6, regclient v0.11.7): the one on
# PATH when `go version -m` names that module version, else built with
# `go build` in that module into $CNAB_AIRGAP_TOOLS_DIR/bin (about a minute).
#
# registry (distribution's `registry` binary, which the cluster tests run as
# several processes sharing one storage directory) is always the version the
# module tools/registry pins (github.com/distribution/distribution/v3 v3.1.2,
# the version go.mod uses in-process): the one on PATH when `go version -m`
# names that module version, else built the same way from that module (a few
# minutes: its storage drivers bring the cloud SDKs).
#
# notary-server v0.7.0 (the last release) built with Go >= 1.17 reads the
# delegation role "targets/releases" of a publish as "releases" and refuses it
# (notaryproject/notary#1630; fixed upstream after v0.7.0, never released).
# Debian's package carries a fix; the build here applies the same one-line
# change (read the multipart file name from Content-Disposition instead of
# Part.FileName, which Go now reduces to its base name) and checks it applied.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
tools_dir=${CNAB_AIRGAP_TOOLS_DIR:-$repo/.cache/tools}
bin_dir=$tools_dir/bin
case ":$PATH:" in
*":$bin_dir:"*) ;;
*) export PATH="$bin_dir:$PATH" ;;
esac

# Pinned sources: module version and its go.sum hash (checked here as well as
# by the checksum database, so GOSUMDB=off does not loosen the pin).
skopeo_mod=github.com/containers/skopeo
skopeo_ver=v1.14.4
skopeo_sum=h1:HH37avS0ZfvYR844BCpu0TkA8A1ILeEFpwK01xoyUV4=
skopeo_tags="containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper containers_image_storage_stub"
skopeo_min=1.9
notary_mod=github.com/theupdateframework/notary
notary_ver=v0.7.0
notary_sum=h1:QyagRZ7wlSpjT5N2qQAh/pN+DVqgekv4DzbAiAiEL3c=
# Stamped into our notary-server build (`notary-server -version` shows it).
notary_stamp=0.7.0+cnab-airgap-delegations
# cosign: built from the module tools/cosign (go.mod and go.sum pin it).
cosign_mod=github.com/sigstore/cosign/v2
cosign_ver=v2.6.5
cosign_sum=h1:D7kFSWS2HzfD+LpEuBO89D1KfOAODlkWuuhzXS8yzi0=
cosign_dir=$repo/tools/cosign

say() { echo "tools: $*" >&2; }

version_ge() { # version_ge HAVE WANT
	[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

# dpkg_owns PACKAGE FILE: FILE belongs to the installed distribution package.
dpkg_owns() {
	local real list
	real=$(readlink -f "$2")
	for list in /var/lib/dpkg/info/"$1".list /var/lib/dpkg/info/"$1":*.list; do
		[ -f "$list" ] || continue
		grep -qxF -e "$real" -e "$2" "$list" && return 0
	done
	return 1
}

skopeo_ok() {
	local p v
	p=$(command -v skopeo) || return 1
	v=$("$p" --version 2>/dev/null | sed -n 's/^skopeo version \([0-9][0-9.]*\).*/\1/p')
	if [ -z "$v" ] || ! version_ge "$v" "$skopeo_min"; then
		say "skopeo at $p is version '${v:-unknown}', the tests need >= $skopeo_min"
		return 1
	fi
}

notary_ok() {
	local p
	p=$(command -v notary-server) || return 1
	if "$p" -version 2>/dev/null | grep -qF "Version: $notary_stamp,"; then
		return 0
	fi
	if dpkg_owns notary "$p"; then
		return 0
	fi
	say "notary-server at $p is neither the distribution's package nor built by this script;"
	say "  an upstream v0.7.0 build rejects delegation publishes (notaryproject/notary#1630), so it is not used"
	return 1
}

openssl_ok() { command -v openssl >/dev/null 2>&1; }

# containerd: the daemon and ctr, from the distribution's package (the
# tests run it as root, as a node does, to load archives the way operators
# and k3s do).
containerd_ok() { command -v containerd >/dev/null 2>&1 && command -v ctr >/dev/null 2>&1; }
# dockerd (with a docker client) and podman, from the distribution's
# packages (docker.io, podman): the tests run them as root with their own
# storage.
docker_ok() { command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1; }
podman_ok() { command -v podman >/dev/null 2>&1; }

# cosign_ok: the cosign on PATH is cosign_ver. `go version -m` names the
# cosign module version (and hash) the binary was built from: a build from
# tools/cosign says "mod github.com/sigstore/cosign/v2 v2.6.5 h1:...", and
# its `cosign version` says "GitVersion: v2.6.5" only because of that line.
# An official release (built inside cosign's repository, version stamped at
# link time) may say "(devel)" there, so its `cosign version` counts too.
cosign_ok() {
	local p info=""
	p=$(command -v cosign) || return 1
	if [ "$p" = "$bin_dir/cosign" ] &&
		{ [ "$cosign_dir/go.mod" -nt "$p" ] || [ "$cosign_dir/go.sum" -nt "$p" ]; }; then
		say "cosign at $p is older than $cosign_dir/go.mod or go.sum"
		return 1
	fi
	if command -v go >/dev/null 2>&1; then
		info=$(go version -m "$p" 2>/dev/null) || info=""
	fi
	if awk -v m="$cosign_mod" -v v="$cosign_ver" -v s="$cosign_sum" '
		$1 == "path" && $2 == m "/cmd/cosign" { p = 1 }
		($1 == "mod" || $1 == "dep") && $2 == m && $3 == v && ($4 == "" || $4 == s) { d = 1 }
		END { exit !(p && d) }' <<<"$info"; then
		return 0
	fi
	info=$("$p" version 2>&1) || info=""
	if awk -v v="$cosign_ver" '$1 == "GitVersion:" && $2 == v { f = 1 } END { exit !f }' <<<"$info"; then
		return 0
	fi
	say "cosign at $p is not $cosign_ver (the tests need exactly that version)"
	return 1
}

# The OCI peers, built from tools/peers: name, main package, module, version.
peers=(
	"crane github.com/google/go-containerregistry/cmd/crane github.com/google/go-containerregistry v0.22.1"
	"oras oras.land/oras/cmd/oras oras.land/oras v1.3.6"
	"regctl github.com/regclient/regclient/cmd/regctl github.com/regclient/regclient v0.11.7"
)
peers_dir=$repo/tools/peers
# distribution's registry, built from tools/registry (same fields).
registry_peer="registry github.com/distribution/distribution/v3/cmd/registry github.com/distribution/distribution/v3 v3.1.2"
registry_dir=$repo/tools/registry

# peer_ok NAME PKG MOD VERSION: NAME on PATH was built from MOD at VERSION.
peer_ok() {
	local p info
	p=$(command -v "$1") || return 1
	command -v go >/dev/null 2>&1 || return 1
	info=$(go version -m "$p" 2>/dev/null) || return 1
	awk -v pkg="$2" -v m="$3" -v v="$4" '
		$1 == "path" && $2 == pkg { p = 1 }
		($1 == "mod" || $1 == "dep") && $2 == m && $3 == v { d = 1 }
		END { exit !(p && d) }' <<<"$info"
}

# build_peer NAME PKG [DIR]: go build in DIR (default tools/peers), three
# attempts.
build_peer() {
	local try log=$tools_dir/build-$1.log dir=${3:-$peers_dir}
	mkdir -p "$bin_dir"
	say "building $1 from $dir into $bin_dir (once)"
	for try in 1 2 3; do
		if (cd "$dir" && GOWORK=off GOFLAGS=-mod=readonly CGO_ENABLED=0 \
			go build -trimpath -o "$bin_dir/$1" "$2") >"$log" 2>&1; then
			hash -r
			return 0
		fi
		say "$1 build attempt $try failed"
		[ "$try" = 3 ] || sleep $((try * 10))
	done
	tail -n 20 "$log" >&2
	return 1
}

missing() {
	need=()
	skopeo_ok || need+=(skopeo)
	notary_ok || need+=(notary-server)
	openssl_ok || need+=(openssl)
	cosign_ok || need+=(cosign)
	containerd_ok || need+=(containerd)
	docker_ok || need+=(dockerd)
	podman_ok || need+=(podman)
	local p
	for p in "${peers[@]}"; do
		# shellcheck disable=SC2086
		peer_ok $p || need+=("${p%% *}")
	done
	# shellcheck disable=SC2086
	peer_ok $registry_peer || need+=(registry)
}

missing
[ ${#need[@]} -eq 0 ] && exit 0

# As root with apt-get: the distribution's packages (not for cosign, whose
# version is pinned).
pkgs=()
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	for t in "${need[@]}"; do
		case $t in
		notary-server) pkgs+=(notary) ;;
		dockerd) pkgs+=(docker.io) ;;
		cosign | crane | oras | regctl | registry) ;;
		*) pkgs+=("$t") ;;
		esac
	done
fi
if [ ${#pkgs[@]} -gt 0 ]; then
	say "installing the distribution's packages: ${pkgs[*]} (apt-get, as root)"
	mkdir -p "$tools_dir"
	log=$tools_dir/apt.log
	if DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1 &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >>"$log" 2>&1; then
		:
	else
		say "apt-get failed (log: $log):"
		tail -n 20 "$log" >&2
		say "building what Go can build instead"
	fi
	hash -r
	missing
	[ ${#need[@]} -eq 0 ] && exit 0
fi

# go_build NAME MODULE VERSION SUM PACKAGE [PATCH-FUNCTION]: downloads the
# module at VERSION, checks its hash, builds PACKAGE (pure Go) into bin_dir.
go_build() {
	local name=$1 mod=$2 ver=$3 sum=$4 pkg=$5 patch=${6:-} ldflags=${7:-} tags=${8:-}
	local work info dir got log
	command -v go >/dev/null 2>&1 || {
		say "go is not on PATH; it is needed to build $name"
		return 1
	}
	mkdir -p "$bin_dir"
	log=$tools_dir/build-$name.log
	work=$(mktemp -d "$tools_dir/.build-$name.XXXXXX")
	say "building $name from $mod@$ver into $bin_dir (once; a few minutes; log: $log)"
	if ! info=$(cd "$work" && GOWORK=off GOFLAGS= go mod download -json "$mod@$ver" 2>"$log"); then
		say "cannot download $mod@$ver (is the Go module proxy reachable?):"
		tail -n 5 "$log" >&2
		rm -rf "$work"
		return 1
	fi
	dir=$(printf '%s\n' "$info" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
	got=$(printf '%s\n' "$info" | sed -n 's/^[[:space:]]*"Sum": "\(.*\)",\{0,1\}$/\1/p')
	if [ "$got" != "$sum" ]; then
		say "$mod@$ver has hash '$got', pinned $sum: refusing to build it"
		rm -rf "$work"
		return 1
	fi
	cp -R "$dir" "$work/src"
	chmod -R u+w "$work/src"
	if [ -n "$patch" ] && ! (cd "$work/src" && "$patch"); then
		say "patching $mod@$ver failed"
		rm -rf "$work"
		return 1
	fi
	if ! (cd "$work/src" && GOWORK=off GOFLAGS= CGO_ENABLED=0 go build -mod=mod -trimpath \
		-tags "$tags" -ldflags "$ldflags" -o "$work/$name" "$pkg") >>"$log" 2>&1; then
		say "building $name failed:"
		grep -v '^go: downloading' "$log" | tail -n 20 >&2
		rm -rf "$work"
		return 1
	fi
	mv -f "$work/$name" "$bin_dir/$name"
	rm -rf "$work"
	hash -r
}

# The delegation fix in notary-server's publish handler (see the top).
patch_notary() {
	local f=server/handlers/default.go
	sed -i \
		-e 's|^\t"io"$|\t"io"\n\t"mime"|' \
		-e 's|^\t\trole := data.RoleName(strings.TrimSuffix(part.FileName(), ".json"))$|\t\t_, cd, _ := mime.ParseMediaType(part.Header.Get("Content-Disposition"))\n\t\trole := data.RoleName(strings.TrimSuffix(cd["filename"], ".json"))|' \
		"$f"
	grep -qF 'role := data.RoleName(strings.TrimSuffix(cd["filename"], ".json"))' "$f" &&
		grep -qxF "$(printf '\t"mime"')" "$f" &&
		! grep -qF 'part.FileName()' "$f"
}

# build_cosign: builds cosign_ver from the module tools/cosign into bin_dir,
# after checking that module pins it; three attempts (a module proxy may
# answer 5xx for a while), 10s then 20s apart.
build_cosign() {
	local work log try
	command -v go >/dev/null 2>&1 || {
		say "go is not on PATH; it is needed to build cosign"
		return 1
	}
	if ! grep -qE "^[[:space:]]*(require[[:space:]]+)?${cosign_mod//./[.]}[[:space:]]+${cosign_ver//./[.]}([[:space:]]|\$)" "$cosign_dir/go.mod" ||
		! grep -qxF "$cosign_mod $cosign_ver $cosign_sum" "$cosign_dir/go.sum"; then
		say "$cosign_dir/go.mod and go.sum do not pin $cosign_mod $cosign_ver ($cosign_sum)"
		return 1
	fi
	mkdir -p "$bin_dir"
	log=$tools_dir/build-cosign.log
	: >"$log"
	work=$(mktemp -d "$tools_dir/.build-cosign.XXXXXX")
	say "building cosign $cosign_ver from $cosign_dir into $bin_dir (once; several minutes; log: $log)"
	for try in 1 2 3; do
		if (cd "$cosign_dir" && GOWORK=off GOFLAGS=-mod=readonly CGO_ENABLED=0 \
			go build -trimpath -o "$work/cosign" "$cosign_mod/cmd/cosign") >>"$log" 2>&1; then
			mv -f "$work/cosign" "$bin_dir/cosign"
			rm -rf "$work"
			hash -r
			return 0
		fi
		say "cosign build attempt $try failed"
		[ "$try" = 3 ] || sleep $((try * 10))
	done
	say "building cosign failed:"
	grep -v '^go: downloading' "$log" | tail -n 20 >&2
	rm -rf "$work"
	return 1
}

failed=()
for t in "${need[@]}"; do
	case $t in
	skopeo)
		go_build skopeo "$skopeo_mod" "$skopeo_ver" "$skopeo_sum" ./cmd/skopeo "" "" "$skopeo_tags" &&
			skopeo_ok || failed+=(skopeo)
		;;
	notary-server)
		go_build notary-server "$notary_mod" "$notary_ver" "$notary_sum" ./cmd/notary-server patch_notary \
			"-X $notary_mod/version.NotaryVersion=$notary_stamp" &&
			notary_ok || failed+=(notary-server)
		;;
	openssl | containerd | dockerd | podman)
		failed+=("$t")
		;;
	cosign)
		build_cosign && cosign_ok || failed+=(cosign)
		;;
	crane | oras | regctl)
		for p in "${peers[@]}"; do
			set -- $p
			[ "$1" = "$t" ] || continue
			build_peer "$1" "$2" && peer_ok "$@" || failed+=("$t")
		done
		;;
	registry)
		# shellcheck disable=SC2086
		set -- $registry_peer
		build_peer "$1" "$2" "$registry_dir" && peer_ok "$@" || failed+=(registry)
		;;
	esac
done

if [ ${#failed[@]} -gt 0 ]; then
	for t in "${failed[@]}"; do
		case $t in
		openssl)
			say "openssl is missing and is not built here: install the distribution's package"
			say "  (Debian/Ubuntu: apt-get install openssl; Fedora: dnf install openssl), or run make test as root on Debian/Ubuntu"
			;;
		skopeo)
			say "skopeo is missing: run make test as root on Debian/Ubuntu (apt-get install skopeo), or install skopeo >= $skopeo_min"
			;;
		notary-server)
			say "notary-server is missing: run make test as root on Debian/Ubuntu (apt-get install notary);"
			say "  an upstream 'go install .../cmd/notary-server@v0.7.0' build does not do: it rejects delegation publishes"
			;;
		crane | oras | regctl)
			say "$t could not be built from $peers_dir (see the messages above); the Go module proxy must be reachable once"
			;;
		registry)
			say "registry (distribution v3.1.2) could not be built from $registry_dir (see the messages above);"
			say "  the Go module proxy must be reachable once"
			;;
		dockerd | podman)
			say "$t is missing and is not built here: the tests run it as root;"
			say "  run make test as root on Debian/Ubuntu (apt-get install docker.io podman)"
			;;
		containerd)
			say "containerd (with ctr) is missing and is not built here: the tests run the daemon as root;"
			say "  run make test as root on Debian/Ubuntu (apt-get install containerd)"
			;;
		cosign)
			say "cosign $cosign_ver is missing and could not be built from $cosign_dir (see the messages above);"
			say "  the Go module proxy must be reachable once, or put an official cosign $cosign_ver release first on PATH"
			;;
		esac
	done
	say "the end-to-end tests need all of them; nothing was skipped, make test stops here"
	exit 1
fi
say "tools ready; $bin_dir is first on PATH for the tests (the Makefile puts it there)"
