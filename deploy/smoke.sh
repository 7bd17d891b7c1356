#!/usr/bin/env bash
# Smoke test of the container deployment, run by hand (not in CI): build the image, bring
# deploy/compose.yaml up with podman-compose, and watch the seed article flow through it:
#   replay (in the io worker's container, its fixture server reachable as worker-io) ->
#   io worker polls the fixture feed -> cpu worker fetches the page, extracts, dedups,
#   publishes -> `consume` in a fresh container.
# Then `down`, timings, and a non-zero exit on any failure (the stack is removed anyway).
#
# Needs root, podman (+ runc), debootstrap, a Debian mirror and PyPI; no container registry:
# base images are built locally as in ../shared/notes/containers.md when missing.
# Environment (all optional):
#   BASE_IMAGE      base of the project image     (default localhost/debian-python:bookworm)
#   REDIS_IMAGE     Redis image                   (default localhost/redis-local:7)
#   NEWSWIRE_IMAGE  tag of the project image      (default localhost/newswire:latest)
#   DEBIAN_MIRROR   mirror for debootstrap        (default: the one apt uses, else deb.debian.org)
#   CA_BUNDLE       host CA bundle mounted into builds (egress TLS may be intercepted)
#   SMOKE_PROJECT   compose project name          (default newswire_smoke)
#   CONTAINERS_CONF / CONTAINERS_STORAGE_CONF: podman settings (default: runc, overlay store)
set -Eeuo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT=${SMOKE_PROJECT:-newswire_smoke}
SUITE=bookworm
export BASE_IMAGE=${BASE_IMAGE:-localhost/debian-python:$SUITE}
export REDIS_IMAGE=${REDIS_IMAGE:-localhost/redis-local:7}
export NEWSWIRE_IMAGE=${NEWSWIRE_IMAGE:-localhost/newswire:latest}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/newswire-smoke.XXXXXX")
STACK_UP=0
SMOKE_T0=$(date +%s.%N)
TIMINGS=()

# --- helpers ---------------------------------------------------------------------------

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
step() { STEP_NAME=$1; STEP_T0=$(now); printf '\n== %s\n' "$STEP_NAME"; }
step_done() {
    local dt
    dt=$(elapsed "$STEP_T0")
    TIMINGS+=("$(printf '  %7s s  %s' "$dt" "$STEP_NAME")")
    printf '   done in %s s\n' "$dt"
}
fail() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }

# Run a noisy command with its output in a log file; show the log's tail if it fails.
quiet() {
    local log=$WORK/$1.log
    shift
    if ! "$@" >"$log" 2>&1; then
        printf '   command failed: %s\n' "$*" >&2
        tail -n 40 "$log" | sed 's/^/   | /' >&2
        return 1
    fi
}

compose() {
    "$WORK/pcvenv/bin/podman-compose" -p "$PROJECT" -f "$DEPLOY_DIR/compose.yaml" "$@"
}

# The id of the (first) running container of a compose service.
container_of() {
    podman ps -q --filter "label=io.podman.compose.project=$PROJECT" \
        --filter "label=com.docker.compose.service=$1" | head -n 1
}

# Stop the app before Redis, as Docker Compose does (podman-compose 1.x stops everything at
# once): a worker's warm shutdown opens new Redis connections (Celery's remote-control
# channel, the heartbeat removal), each retried, so with Redis gone it can take 30-50 s.
# The same happens here now and then with Redis up: podman 4.3's aardvark-dns sometimes
# stops answering for a while after a container leaves the network, and each lookup of
# "redis" then times out (about 20 s). The down step shows each service's stop time.
stack_down() {
    compose stop worker-io worker-cpu scheduler && compose down -v
}

image_id() { podman image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }

# After a rebuild, drop the image that the tag pointed to before, if nothing else uses it
# (only ours: no global prune).
drop_replaced() {
    local before=$1 tag=$2
    if [[ -n $before && $before != "$(image_id "$tag")" ]]; then
        podman rmi "$before" >/dev/null 2>&1 || true
    fi
}

build_args_ca() {
    if [[ -r $CA_BUNDLE ]]; then
        printf '%s' "-v $CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro"
    fi
}

cleanup() {
    local rc=$?
    trap - EXIT
    if ((STACK_UP)); then
        if ((rc != 0)); then
            printf '\n-- service logs (last 30 lines each)\n' >&2
            for service in redis worker-io worker-cpu scheduler; do
                local cid
                cid=$(podman ps -aq --filter "label=io.podman.compose.project=$PROJECT" \
                    --filter "label=com.docker.compose.service=$service" | head -n 1)
                [[ -n $cid ]] || continue
                printf -- '--- %s\n' "$service" >&2
                podman logs --tail 30 "$cid" 2>&1 | sed 's/^/   | /' >&2 || true
            done
        fi
        printf '\n== cleanup: compose stop + down -v\n' >&2
        stack_down >"$WORK/down-cleanup.log" 2>&1 || true
    fi
    rm -rf "$WORK"
    if ((rc == 0)); then
        printf '\nSMOKE OK\n'
    else
        printf '\nSMOKE FAILED (exit %d)\n' "$rc" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 0. tools and podman settings ------------------------------------------------------

step "tools (podman, runc, debootstrap, podman-compose)"
((EUID == 0)) || fail "run as root (debootstrap and the rootful podman store need it)"
missing=()
for tool in podman runc debootstrap; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null || fail "missing: ${missing[*]} (and no apt-get to install them)"
    echo "   installing ${missing[*]} with apt-get"
    quiet apt apt-get install -y -q podman runc debootstrap ||
        { quiet apt-update apt-get update -q && quiet apt apt-get install -y -q podman runc debootstrap; }
fi
# crun fails on rlimits in some VMs; runc and no default ulimits work everywhere we tried.
if [[ -z ${CONTAINERS_CONF:-} ]]; then
    printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n' >"$WORK/containers.conf"
    export CONTAINERS_CONF=$WORK/containers.conf
fi
if [[ -z ${CONTAINERS_STORAGE_CONF:-} ]]; then
    printf '[storage]\ndriver = "overlay"\nrunroot = "/run/containers/storage-overlay"\ngraphroot = "/var/lib/containers/storage-overlay"\n' \
        >"$WORK/storage.conf"
    export CONTAINERS_STORAGE_CONF=$WORK/storage.conf
fi
python3 -m venv "$WORK/pcvenv"
quiet pip "$WORK/pcvenv/bin/pip" install -q "podman-compose>=1.6,<2"
echo "   $(podman --version), $("$WORK/pcvenv/bin/podman-compose" --version 2>/dev/null | grep -i 'podman-compose' | head -n 1)"
step_done

# --- 1. base images (only when missing) ------------------------------------------------

debian_mirror() {
    local uri=${DEBIAN_MIRROR:-}
    if [[ -z $uri && -r /etc/apt/sources.list.d/debian.sources ]]; then
        uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
    fi
    if [[ -z $uri && -r /etc/apt/sources.list ]]; then
        uri=$(awk '$1 == "deb" && $3 == "'$SUITE'" { print $2; exit }' /etc/apt/sources.list)
    fi
    printf '%s' "${uri:-http://deb.debian.org/debian}"
}

step "base image $BASE_IMAGE"
if podman image exists "$BASE_IMAGE"; then
    echo "   present"
elif [[ $BASE_IMAGE == localhost/debian-python:* ]]; then
    mirror=$(debian_mirror)
    echo "   debootstrap $SUITE from $mirror"
    quiet debootstrap debootstrap --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates \
        "$SUITE" "$WORK/rootfs" "$mirror"
    chroot "$WORK/rootfs" apt-get clean
    rm -rf "$WORK/rootfs/var/lib/apt/lists/"*
    tar -C "$WORK/rootfs" -c . | quiet import podman import \
        --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$BASE_IMAGE"
    rm -rf "$WORK/rootfs"
else
    fail "$BASE_IMAGE is missing and is not one this script knows how to build"
fi
step_done

step "redis image $REDIS_IMAGE"
if [[ $REDIS_IMAGE == localhost/redis-local:* ]]; then
    # Debian's redis-server on the same base. Built every time, but layers are cached: a
    # second run takes a second, and an image built from another recipe is replaced.
    mkdir -p "$WORK/redis-image"
    cat >"$WORK/redis-image/Dockerfile" <<'EOF'
ARG BASE_IMAGE=localhost/debian-python:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
HEALTHCHECK --interval=10s --timeout=3s CMD ["redis-cli", "ping"]
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
EOF
    before=$(image_id "$REDIS_IMAGE")
    quiet redis-build podman build --format docker --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        -t "$REDIS_IMAGE" "$WORK/redis-image"
    drop_replaced "$before" "$REDIS_IMAGE"
    echo "   $(podman run --rm "$REDIS_IMAGE" redis-server --version 2>/dev/null | cut -d' ' -f1-3)"
elif ! podman image exists "$REDIS_IMAGE"; then
    fail "$REDIS_IMAGE is missing (no registry here?): build it locally or use localhost/redis-local:7"
fi
step_done

# --- 2. the project image, through compose's own build section -------------------------

step "build $NEWSWIRE_IMAGE (podman-compose build)"
before=$(image_id "$NEWSWIRE_IMAGE")
# --format docker keeps the HEALTHCHECK; the CA bundle lets pip through an intercepting proxy.
quiet build compose --podman-build-args "--format docker $(build_args_ca)" build worker-io
drop_replaced "$before" "$NEWSWIRE_IMAGE"
size=$(podman image inspect --format '{{.Size}}' "$NEWSWIRE_IMAGE")
echo "   $NEWSWIRE_IMAGE $(image_id "$NEWSWIRE_IMAGE" | cut -c1-12), $((size / 1000000)) MB"
echo "   user $(podman run --rm "$NEWSWIRE_IMAGE" id -u 2>/dev/null), healthcheck: $(podman image inspect \
    --format '{{json .Config.Healthcheck.Test}}' "$NEWSWIRE_IMAGE")"
step_done

# --- 3. the stack --------------------------------------------------------------------

step "compose up (redis, worker-io, worker-cpu, scheduler)"
compose down -v >"$WORK/down-before.log" 2>&1 || true # leftovers of an interrupted run
STACK_UP=1
quiet up compose up -d
for service in redis worker-io worker-cpu scheduler; do
    [[ -n $(container_of "$service") ]] || fail "service $service is not running"
done
step_done

step "wait for healthy (each service's own healthcheck)"
deadline=$((SECONDS + 120))
for service in redis worker-io worker-cpu scheduler; do
    cid=$(container_of "$service")
    until podman healthcheck run "$cid" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || fail "$service did not become healthy in 120 s"
        [[ -n $(container_of "$service") ]] || fail "$service stopped"
        sleep 1
    done
    printf '   %-10s healthy (%s s)\n' "$service" "$(elapsed "$STEP_T0")"
done
redis_cid=$(container_of redis)
echo "   redis appendonly=$(podman exec "$redis_cid" redis-cli config get appendonly | tail -n 1)," \
    "maxmemory-policy=$(podman exec "$redis_cid" redis-cli config get maxmemory-policy | tail -n 1)"
step_done

# --- 4. the seed article through the stack ---------------------------------------------

step "replay the seed (newswire replay --json, in the worker-io container)"
# The fixture server runs in the container replay runs in; the io worker polls its feed
# and the cpu worker (another container) downloads the page, so it listens on the
# container network and names itself by the compose service (the origin is allowed for
# the replay, private address or not).
io_cid=$(container_of worker-io)
if ! podman exec "$io_cid" newswire replay --json --timeout 90 \
    --listen 0.0.0.0 --advertise worker-io \
    >"$WORK/replay.json" 2>"$WORK/replay.log"; then
    tail -n 30 "$WORK/replay.log" | sed 's/^/   | /' >&2
    cat "$WORK/replay.json" >&2
    fail "replay exited non-zero"
fi
python3 -m json.tool "$WORK/replay.json" | sed 's/^/   /'
python3 - "$WORK/replay.json" <<'EOF' || fail "replay did not publish exactly one article"
import json, sys
summary = json.load(open(sys.argv[1]))
assert summary["published"] == 1, summary
assert summary["failed"] == 0 and summary["pending"] == 0, summary
EOF
step_done

step "consume (newswire consume --json --no-wait, one-off container)"
quiet consume compose run --rm --no-deps -T worker-io newswire consume --json --no-wait
grep '^{' "$WORK/consume.log" >"$WORK/articles.jsonl" || true
python3 - "$WORK/articles.jsonl" <<'EOF' || fail "the stream does not hold the seed article"
import json, sys
articles = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
assert len(articles) == 1, f"{len(articles)} articles on the stream"
a = articles[0]
assert a["schema"] == "newswire.article/1", a["schema"]
assert a["extraction"] == "page", a["extraction"]
assert len(a["text"]) > 500, len(a["text"])
assert "catastrophic development" in a["text"]
for key in ("id", "url", "title", "language", "fetched_at", "content_hash", "extraction"):
    print(f"   {key:<13} {a[key]}")
text = a["text"].replace("\n", " ")
print(f"   {'text':<13} {len(a['text'])} chars: {text[:150]}...")
EOF
step_done

step "status (newswire status, in the scheduler container)"
podman exec "$(container_of scheduler)" newswire status 2>/dev/null | sed 's/^/   /'
step_done

# --- 5. down -------------------------------------------------------------------------

step "compose stop (app, then redis) and down -v"
# Each app service is stopped on its own clock so a slow one shows; exit 137 means it was
# killed at the end of its stop_grace_period instead of finishing its warm shutdown.
declare -A stopped_cid=()
for service in worker-io worker-cpu scheduler; do
    stopped_cid[$service]=$(container_of "$service")
    (
        t0=$(now)
        compose stop "$service" >"$WORK/stop-$service.log" 2>&1
        printf '%s %s\n' "$service" "$(elapsed "$t0")" >"$WORK/stop-$service.time"
    ) &
done
wait
for service in worker-io worker-cpu scheduler; do
    read -r _ dt <"$WORK/stop-$service.time"
    code=$(podman inspect --format '{{.State.ExitCode}}' "${stopped_cid[$service]}")
    printf '   %-10s stopped in %5s s, exit %s\n' "$service" "$dt" "$code"
    ((code != 137)) || echo "   WARNING: $service was killed at the end of its grace period"
done
quiet down stack_down
STACK_UP=0
left=$(podman ps -aq --filter "label=io.podman.compose.project=$PROJECT")
[[ -z $left ]] || fail "containers left after down: $left"
step_done

printf '\n== timings\n'
printf '%s\n' "${TIMINGS[@]}"
printf '  %7s s  %s\n' "$(elapsed "$SMOKE_T0")" "total"
