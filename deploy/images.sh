#!/usr/bin/env bash
# Builds the local images DockFlare's Docker tests run, without any registry:
#
#   dockflare-test/origin:latest     HTTP origin       (dockflare-testkit origin)
#   dockflare-test/connector:latest  cloudflared stub  (dockflare-testkit connector-stub)
#   dockflare/local-edge:latest      the local edge    (dockflare-local-edge, agent/src/bin/local_edge.rs)
#   dockflare/master:VERSION, :latest  the master        (deploy/master.Dockerfile)
#   dockflare/agent:VERSION, :latest   the agent         (deploy/agent.Dockerfile)
#
# All are FROM scratch around one statically linked binary: the test images around
# deploy/testkit/src/main.rs (Dockerfiles in deploy/testkit/), the local edge around the agent
# crate's second binary (deploy/local-edge.Dockerfile). Nothing is pulled. Each image is labelled
# with the sha256 of the binary it holds (stripped, built with this checkout's path remapped, so
# that another clone of the same source yields the same bytes) and the sha256 of its recipe (the
# Dockerfile, and whether the copy was stripped), and is rebuilt only when one of them changed: a
# second run, or a run from another clone, costs two no-op cargo builds and a few
# `docker image inspect`s, and leaves images that containers use alone.
#
#   deploy/images.sh
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> images: %s\n' "$*" >&2; }
die() { printf 'deploy/images.sh: %s\n' "$*" >&2; exit 1; }

BIN_LABEL=org.dockflare.testkit.sha256
RECIPE_LABEL=org.dockflare.testkit.recipe-sha256
TRIPLE="$(uname -m)-unknown-linux-gnu"

command -v docker >/dev/null || die "docker is not installed (deploy/test.sh installs it)"
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (is dockerd running? deploy/test.sh starts it)"
command -v sha256sum >/dev/null || die "sha256sum is missing (coreutils)"
# Without buildx, the Docker CLI can only use the classic builder; say so rather than fail on DOCKER_BUILDKIT=1.
docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0

# --- the static binaries ----------------------------------------------------------------------
context=$(mktemp -d "${TMPDIR:-/tmp}/dockflare-images.XXXXXX") || die "cannot create a temporary build context"
trap 'rm -rf "$context"' EXIT

static_binary() { # PACKAGE BINARY [PROFILE] -> builds it statically, copies (stripped) into $context/BINARY, sets bin_sha
  local package="$1" name="$2" profile="${3:-release}" messages bin
  log "building $name (static, $TRIPLE, profile $profile)"
  messages=$(RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=$PWD=." cargo build --profile "$profile" --target "$TRIPLE" \
    -p "$package" --bin "$name" --message-format=json-render-diagnostics) \
    || die "cargo build of $name failed (see above)"
  bin=$(printf '%s\n' "$messages" | sed -n "s/.*\"executable\":\"\([^\"]*\/$name\)\".*/\1/p" | tail -n 1)
  [ -n "$bin" ] && [ -x "$bin" ] || die "cargo did not report the $name executable"
  cp "$bin" "$context/$name" || die "cannot copy $bin into $context"
  # The release profile keeps line tables; the images do not need them (5.7 MB -> 1.4 MB).
  stripped=no
  if command -v strip >/dev/null; then
    strip "$context/$name" || die "strip failed on $context/$name"
    stripped=yes
  fi
  # What goes into the image, not what cargo left (its debug info names the build directory).
  bin_sha=$(sha256sum "$context/$name" | cut -d' ' -f1)
  log "binary $bin ($(du -h "$context/$name" | cut -f1) as copied, sha256 ${bin_sha:0:12})"
}

label_of() { # IMAGE LABEL -> the label's value, empty when the image or the label is missing
  docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

# Product images get more tags and OCI labels: set these before build_image, clear them after.
extra_tags=()
oci_labels=()
build_image() { # IMAGE DOCKERFILE SMOKE-TEST-ARGS... (the binary is the one static_binary built last)
  local image="$1" dockerfile="$2"
  shift 2
  [ -f "$dockerfile" ] || die "missing $dockerfile"
  local recipe_sha old_id new_id tag_args=() label_args=() tag label
  for tag in "${extra_tags[@]}"; do tag_args+=(--tag "$tag"); done
  for label in "${oci_labels[@]}"; do label_args+=(--label "$label"); done
  recipe_sha=$({ cat "$dockerfile"; echo "stripped=$stripped"; printf '%s\n' "${extra_tags[@]}" "${oci_labels[@]}"; } | sha256sum | cut -d' ' -f1)
  if [ "$(label_of "$image" "$BIN_LABEL")" = "$bin_sha" ] && [ "$(label_of "$image" "$RECIPE_LABEL")" = "$recipe_sha" ]; then
    for tag in "${extra_tags[@]}"; do docker tag "$image" "$tag" || die "cannot tag $image as $tag"; done
    log "$image is up to date ($(docker image inspect --format '{{.Id}}' "$image" | cut -c8-19)), skipped"
    return
  fi
  old_id=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
  cp "$dockerfile" "$context/Dockerfile" || die "cannot copy $dockerfile into $context"
  mkdir -p "$context/data" || die "cannot create the image's empty /data"
  # stderr is kept for failures only (the classic builder prints a deprecation notice every time).
  new_id=$(docker build --quiet --pull=false \
    --label "$BIN_LABEL=$bin_sha" --label "$RECIPE_LABEL=$recipe_sha" "${label_args[@]}" \
    --tag "$image" "${tag_args[@]}" "$context" 2>"$context/build.log") \
    || { cat "$context/build.log" >&2; die "docker build of $image failed"; }
  # Smoke test: the static binary starts in an empty image.
  docker run --rm --network none "$image" "$@" >"$context/run.log" 2>&1 \
    || { cat "$context/run.log" >&2; die "$image was built but '$*' does not run in it (is the binary static?)"; }
  # The previous build lost its tag; drop it unless a container still uses it.
  if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    if docker image rm "$old_id" >"$context/rm.log" 2>&1; then
      log "removed the previous $image (${old_id:7:12})"
    else
      log "kept the previous $image (${old_id:7:12}): $(tail -n 1 "$context/rm.log")"
    fi
  fi
  log "$image built ($(printf '%s' "$new_id" | cut -c8-19), $(docker image inspect --format '{{.Size}}' "$image") bytes)"
}

# --- the images -------------------------------------------------------------------------------
static_binary dockflare-testkit dockflare-testkit
build_image dockflare-test/origin:latest deploy/testkit/origin.Dockerfile --help
build_image dockflare-test/connector:latest deploy/testkit/connector.Dockerfile version

static_binary dockflare-agent dockflare-local-edge
build_image dockflare/local-edge:latest deploy/local-edge.Dockerfile version

# The product images: versioned (the crate version) and latest, with OCI labels. The revision is
# part of the recipe, so a new commit relabels them (the binary may be byte-identical).
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || die "cannot read the version from Cargo.toml"
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
source_url=$(git config --get remote.origin.url 2>/dev/null || echo unknown)
product_image() { # NAME DOCKERFILE TITLE SMOKE-ARGS...
  local name="$1" dockerfile="$2" title="$3"
  shift 3
  extra_tags=("dockflare/$name:$version")
  oci_labels=(
    "org.opencontainers.image.title=$title"
    "org.opencontainers.image.version=$version"
    "org.opencontainers.image.revision=$revision"
    "org.opencontainers.image.source=$source_url"
    "org.opencontainers.image.licenses=GPL-3.0-only"
  )
  build_image "dockflare/$name:latest" "$dockerfile" "$@"
  extra_tags=()
  oci_labels=()
}
static_binary dockflare-agent dockflare-agent agent
product_image agent deploy/agent.Dockerfile "DockFlare agent" --version
static_binary dockflare-master dockflare-master
product_image master deploy/master.Dockerfile "DockFlare master" --version
