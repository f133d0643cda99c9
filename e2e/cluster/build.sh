#!/usr/bin/env bash
# Builds the real Kubernetes control plane that Conflux's operator tests run against, from the
# Go modules pinned in versions.env: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kube-proxy, kubectl and CoreDNS.
#
# Binaries land in ${CONFLUX_CACHE:-$HOME/.cache/conflux}/k8s-<K8S_VERSION>/bin, next to the
# generated build modules in .../build (never in the repository). A binary is rebuilt only when
# its pinned version or build flags change, so a second run finishes in about a second.
#
# Usage: e2e/cluster/build.sh [--bin-dir]   (--bin-dir: print the binary directory and exit)
# The last line printed is always `bin: <dir>`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache=${CONFLUX_CACHE:-$HOME/.cache/conflux}
root="$cache/k8s-$K8S_VERSION"
bin="$root/bin"
work="$root/build"

if [[ ${1-} == --bin-dir ]]; then
  echo "$bin"
  exit 0
fi

started=$(date +%s)
step() { printf '[k8s-build %3ss] %s\n' "$(($(date +%s) - started))" "$*"; }

mkdir -p "$bin" "$work"
# Two test processes may call this at once: the second waits and then finds everything cached.
exec 9>"$root/.lock"
flock 9

# Never download another toolchain: a module that needs a newer Go must fail loudly here.
export GOTOOLCHAIN=local
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod"
export CGO_ENABLED=0
go_version=$(go env GOVERSION)
go_version=${go_version#go}
if [[ $(printf '%s\n%s\n' "$GO_MIN_VERSION" "$go_version" | sort -V | head -1) != "$GO_MIN_VERSION" ]]; then
  echo "build.sh: Go $go_version is older than the $GO_MIN_VERSION these modules need" >&2
  exit 1
fi

k8s_minor=${K8S_VERSION#v1.}
k8s_minor=${k8s_minor%%.*}
staging_version="v0.${K8S_VERSION#v1.}"
k8s_ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

# stamp NAME: what a cached binary must have been built from to be reused.
stamp_of() {
  case $1 in
    etcd) echo "go.etcd.io/etcd/server/v3@$ETCD_VERSION go$go_version" ;;
    coredns) echo "github.com/coredns/coredns@$COREDNS_VERSION go$go_version" ;;
    *) echo "k8s.io/kubernetes@$K8S_VERSION go$go_version $k8s_ldflags" ;;
  esac
}
cached() { [[ -x $bin/$1 && -f $bin/.$1.stamp && $(cat "$bin/.$1.stamp") == "$(stamp_of "$1")" ]]; }

k8s_binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl kube-proxy)
all=(etcd "${k8s_binaries[@]}" coredns)
missing=()
for name in "${all[@]}"; do cached "$name" || missing+=("$name"); done
if ((${#missing[@]} == 0)); then
  step "all ${#all[@]} binaries cached (Kubernetes $K8S_VERSION, etcd $ETCD_VERSION, CoreDNS $COREDNS_VERSION)"
  echo "bin: $bin"
  exit 0
fi
step "building ${missing[*]} with $(go env GOVERSION) into $bin"

# build NAME MODULE_DIR PACKAGE [LDFLAGS]: builds one binary and installs it atomically.
build() {
  local name=$1 dir=$2 pkg=$3 ldflags=${4:-"-s -w"} t0
  if cached "$name"; then
    step "$name: cached"
    return
  fi
  t0=$(date +%s)
  step "$name: building $pkg"
  # Module downloads are noise here; the full output stays in build/<name>.log.
  if ! (cd "$dir" && nice -n 10 go build -trimpath -ldflags="$ldflags" -o "$bin/.$name.tmp" "$pkg") \
    >"$work/$name.log" 2>&1; then
    grep -v '^go: downloading' "$work/$name.log" >&2 || true
    echo "build.sh: building $name failed (full log: $work/$name.log)" >&2
    exit 1
  fi
  mv -f "$bin/.$name.tmp" "$bin/$name"
  stamp_of "$name" >"$bin/.$name.stamp"
  step "$name: built in $(($(date +%s) - t0))s ($(du -h "$bin/$name" | cut -f1))"
}

# write_module DIR "MODULE VERSION": a generated go.mod that requires one module.
write_module() {
  local dir=$1 module=$2
  mkdir -p "$dir"
  if [[ -f $dir/go.mod && $(head -1 "$dir/go.mod") == "// generated for $module" ]]; then
    return 0
  fi
  rm -f "$dir/go.sum"
  printf '// generated for %s\nmodule conflux.local/build\n\ngo %s\n\nrequire %s\n' \
    "$module" "$GO_MIN_VERSION" "$module" >"$dir/go.mod"
}

# etcd: the server module's go.mod replaces its sibling modules with relative paths, which a
# dependent module ignores, so requiring it from a generated module gets the published siblings.
if ! cached etcd; then
  step "etcd: resolving go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  write_module "$work/etcd" "go.etcd.io/etcd/server/v3 $ETCD_VERSION"
fi
build etcd "$work/etcd" go.etcd.io/etcd/server/v3

# Kubernetes: k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with
# ./staging/src/...; a dependent module must replace each with its published v0.<minor>.<patch>.
need_k8s=0
for name in "${k8s_binaries[@]}"; do cached "$name" || need_k8s=1; done
if ((need_k8s)); then
  step "kubernetes: reading the staging module list from k8s.io/kubernetes@$K8S_VERSION go.mod"
  k8s_gomod=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
  [[ -f $k8s_gomod ]] || {
    echo "build.sh: could not download k8s.io/kubernetes@$K8S_VERSION" >&2
    exit 1
  }
  mapfile -t staging < <(sed -n '/^replace (/,/^)/p' "$k8s_gomod" |
    awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}')
  ((${#staging[@]} > 0)) || {
    echo "build.sh: no staging replace block in $k8s_gomod" >&2
    exit 1
  }
  k8s_dir="$work/kubernetes"
  header="// generated for k8s.io/kubernetes $K8S_VERSION"
  if [[ ! -f $k8s_dir/go.mod || $(head -1 "$k8s_dir/go.mod") != "$header" ]]; then
    mkdir -p "$k8s_dir"
    rm -f "$k8s_dir/go.sum"
    {
      echo "$header"
      echo "module conflux.local/build"
      echo
      echo "go $GO_MIN_VERSION"
      echo
      # Kubernetes' own go.mod sets this; the main module's setting is the one that counts.
      grep '^godebug ' "$k8s_gomod" || true
      echo
      echo "require k8s.io/kubernetes $K8S_VERSION"
      echo
      echo "replace ("
      for module in "${staging[@]}"; do
        # Only modules that Kubernetes requires: the sample-* ones are not all published.
        if grep -qE "^[[:space:]]+$module v0\.0\.0" "$k8s_gomod"; then
          echo "	$module => $module $staging_version"
        fi
      done
      echo ")"
    } >"$k8s_dir/go.mod"
  fi
  step "kubernetes: $(grep -c ' => ' "$k8s_dir/go.mod") staging modules pinned to $staging_version"
  for name in "${k8s_binaries[@]}"; do
    build "$name" "$k8s_dir" "k8s.io/kubernetes/cmd/$name" "$k8s_ldflags"
  done
fi

if ! cached coredns; then
  step "coredns: resolving github.com/coredns/coredns@$COREDNS_VERSION"
  write_module "$work/coredns" "github.com/coredns/coredns $COREDNS_VERSION"
fi
build coredns "$work/coredns" github.com/coredns/coredns

step "done: $(du -sh "$bin" | cut -f1) of binaries"
echo "bin: $bin"
