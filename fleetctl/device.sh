# fleetctl's device steps, POSIX sh. fleetctl/device.py sends this file with the
# variables a step needs (D: the package's folder, P: the package, REL: a release)
# and the name of one function to run. Errors go to stderr, last line first read.
set -u

do_lock() {  # INFO ID BREAK
    mkdir -p "$D" || exit 1
    if mkdir "$D/lock" 2>/dev/null; then
        if printf '%s\n' "$INFO" > "$D/lock/info"; then echo acquired; exit 0; fi
        rm -rf "$D/lock"; echo "cannot write the device lock (disk full?)" >&2; exit 1
    fi
    holder=$(cat "$D/lock/info" 2>/dev/null)
    [ -n "$holder" ] || holder="an unknown rollout (empty lock/info)"
    case "$holder" in "rollout=$ID "*) echo acquired; exit 0 ;; esac
    if [ "$BREAK" = 1 ]; then
        printf '%s\n' "$INFO" > "$D/lock/info"; echo "broke $holder"; exit 0
    fi
    echo "device lock held by $holder; pass --break-lock if that rollout is dead" >&2
    exit 3
}

do_unlock() {  # LINE ID: the lock goes even when the audit line cannot be written
    case "$(cat "$D/lock/info" 2>/dev/null)" in "rollout=$ID "*) rm -rf "$D/lock" ;; esac
    printf '%s\n' "$LINE" >> "$D/audit.log" || {
        echo "audit log not written (disk full?)" >&2; exit 1; }
}

do_stage() {  # REL COMPOSE(base64) IMAGE DIGEST CONFIG (set: delivered, no pull)
    R="$D/releases/$REL"
    mkdir -p "$R" "$D/data" || exit 1
    # the compose file holds the containers' env (secrets among it): root only
    (umask 077 && printf '%s' "$COMPOSE" | base64 -d > "$R/compose.yml.tmp") || exit 1
    chmod 600 "$R/compose.yml.tmp" && mv -f "$R/compose.yml.tmp" "$R/compose.yml" || exit 1
    printf '%s\n' "$IMAGE" > "$R/image.tmp" && mv -f "$R/image.tmp" "$R/image" || exit 1
    if docker image inspect "$IMAGE" >/dev/null 2>&1; then
        echo present
    elif [ -n "$CONFIG" ]; then
        echo "image $IMAGE is not on the host: its delivery over SSH did not finish" >&2
        exit 1
    else
        out=$(docker pull "$IMAGE" 2>&1) || { printf '%s\n' "$out" | tail -n 1 >&2; exit 1; }
        echo pulled
    fi
    if [ -n "$CONFIG" ]; then  # a loaded image has no registry digest; its id is the config's
        [ "$(docker image inspect -f '{{.Id}}' "$IMAGE")" = "$CONFIG" ] || {
            echo "image $IMAGE is not the config $CONFIG of $DIGEST" >&2; exit 1; }
    else
        found=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' \
            "$IMAGE" | while read -r d; do [ "${d##*@}" = "$DIGEST" ] && echo yes; done)
        [ -n "$found" ] || { echo "image $IMAGE does not have digest $DIGEST" >&2; exit 1; }
    fi
}

compose_up() {  # in a release folder
    out=$($COMPOSE_CMD -p "$P" -f compose.yml up -d --remove-orphans 2>&1) || {
        printf '%s\n' "$out" | tail -n 3 >&2; exit 1; }
}

do_activate() {  # REL COMPOSE_CMD
    cd "$D/releases/$REL" || exit 1
    compose_up
    all=$(docker ps -a -q --filter "label=com.docker.compose.project=$P")
    [ -n "$all" ] || { echo "no container started" >&2; exit 1; }
    others=$(docker ps -a --filter "label=com.docker.compose.project=$P" \
        --format '{{.Label "io.fleetctl.release"}}' | grep -vx "$REL")
    [ -z "$others" ] || { echo "containers of release $others still run as $P" >&2; exit 1; }
}

do_containers() {
    ids=$(docker ps -a -q --filter "label=com.docker.compose.project=$P")
    [ -z "$ids" ] || docker inspect --format '{{.Name}}|{{.State.Status}}|{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}|{{.RestartCount}}|{{index .Config.Labels "io.fleetctl.release"}}' $ids
}

do_stats() {
    ids=$(docker ps -q --filter "label=com.docker.compose.project=$P")
    [ -z "$ids" ] || docker stats --no-stream --format '{{.Name}}|{{.MemUsage}}|{{.CPUPerc}}' $ids
}

do_tegrastats() {  # one line; "missing" when the host has no tegrastats
    command -v tegrastats >/dev/null 2>&1 || { echo missing; exit 0; }
    tegrastats --interval 500 | head -n 1
}

do_check() {  # CMD
    id=$(docker ps -q --filter "label=com.docker.compose.project=$P" | head -n 1)
    [ -n "$id" ] || { echo "no running container"; exit 1; }
    docker exec "$id" sh -c "$CMD"
}

swap() {  # LINK TARGET: point $D/LINK at TARGET atomically
    ln -sfn "$2" "$D/$1.tmp" && mv -Tf "$D/$1.tmp" "$D/$1"
}

do_commit() {  # REL KEEP
    cd "$D" || exit 1
    cur=$(readlink current 2>/dev/null || true)
    if [ -n "$cur" ] && [ "$cur" != "releases/$REL" ]; then swap previous "$cur" || exit 1; fi
    swap current "releases/$REL" || exit 1
    prev=$(readlink previous 2>/dev/null || true)
    keeper=""
    if [ -n "$prev" ] && [ -f "$prev/image" ]; then  # a stopped container pins its image
        keeper="fleetctl-keep-$P-${prev#releases/}"
        docker inspect "$keeper" >/dev/null 2>&1 || docker create --name "$keeper" \
            --label "io.fleetctl.keep=$P" "$(cat "$prev/image")" true >/dev/null || true
    fi
    for c in $(docker ps -a --filter "label=io.fleetctl.keep=$P" --format '{{.Names}}'); do
        [ "$c" = "$keeper" ] || docker rm "$c" >/dev/null 2>&1 || true
    done
    ls -1 releases | sort -r | tail -n +$((KEEP + 1)) | while read -r old; do
        [ "releases/$old" = "$prev" ] || [ "$old" = "$REL" ] || rm -rf "releases/$old"
    done
    echo "previous=${prev#releases/}"
}

do_releases() {
    [ -d "$D" ] || exit 0
    cd "$D" || exit 1
    echo "current=$(readlink current 2>/dev/null | sed 's,^releases/,,')"
    echo "previous=$(readlink previous 2>/dev/null | sed 's,^releases/,,')"
    for r in releases/*/; do
        [ -f "$r/image" ] && echo "release=$(basename "$r") $(cat "$r/image")"
    done
    true
}

do_remove() {  # CURRENT
    ids=$(docker ps -a -q --filter "label=com.docker.compose.project=$P")
    [ -z "$ids" ] || docker rm -f $ids >/dev/null
    [ "$CURRENT" = 0 ] || rm -f "$D/current"
}

do_switch() {  # REL COMPOSE_CMD CURRENT: run an earlier release again, no pull
    R="$D/releases/$REL"
    [ -f "$R/compose.yml" ] || { echo "release $REL is gone from the device" >&2; exit 1; }
    docker image inspect "$(cat "$R/image")" >/dev/null 2>&1 || {
        echo "the image of release $REL is gone from the device" >&2; exit 1; }
    cd "$R" && compose_up
    if [ "$CURRENT" = 1 ]; then
        cur=$(readlink "$D/current" 2>/dev/null || true)
        if [ -n "$cur" ] && [ "$cur" != "releases/$REL" ]; then swap previous "$cur"; fi
        swap current "releases/$REL"
    fi
}

# Image delivery over SSH (fleetctl/delivery.py). S: the staging folder; blobs wait in
# $S/blobs as <hex>.part while they arrive and as <hex> once their sha256 matched.
size_of() { if [ -f "$1" ]; then wc -c < "$1" | tr -d ' '; else echo 0; fi; }

do_survey() {  # Q: lines "image TAG CONFIG", "chain HEX", "blob HEX"
    root=$(docker info -f '{{.DockerRootDir}} {{.Driver}}' 2>/dev/null)
    LAYERDB="${root% *}/image/${root#* }/layerdb/sha256"
    printf '%s\n' "$Q" | while read -r kind key extra; do
        case "$kind" in
        image) [ "$(docker image inspect -f '{{.Id}}' "$key" 2>/dev/null)" = "$extra" ] \
                   && echo "image:$key yes" ;;
        chain) [ -d "$LAYERDB/$key" ] && echo "chain:$key yes" ;;
        blob) if [ -f "$S/blobs/$key" ]; then echo "blob:$key $(size_of "$S/blobs/$key")"
              else echo "blob:$key $(size_of "$S/blobs/$key.part")"; fi ;;
        esac
    done
    true
}

do_seal() {  # H: check a complete blob's sha256 and make it final
    [ -f "$S/blobs/$H" ] && exit 0
    sum=$(sha256sum "$S/blobs/$H.part" | cut -d ' ' -f 1) || exit 1
    if [ "$sum" != "$H" ]; then
        rm -f "$S/blobs/$H.part"
        echo "blob sha256:$H arrived damaged (sha256 $sum); it is sent again next time" >&2
        exit 1
    fi
    mv -f "$S/blobs/$H.part" "$S/blobs/$H"
}

do_load() {  # MANIFEST TAG CONFIG BLOBS: docker load the staged blobs, check the id
    L="$S/load.$$"
    rm -rf "$L" && mkdir -p "$L/blobs/sha256" || exit 1
    for h in $BLOBS; do  # a layer the engine has is not staged: docker load skips it
        [ -f "$S/blobs/$h" ] && { ln "$S/blobs/$h" "$L/blobs/sha256/$h" 2>/dev/null ||
            cp "$S/blobs/$h" "$L/blobs/sha256/$h" || { rm -rf "$L"; exit 1; }; }
    done
    printf '%s' "$MANIFEST" > "$L/manifest.json" || { rm -rf "$L"; exit 1; }
    out=$(tar -C "$L" -cf - . | docker load 2>&1)
    rc=$?
    rm -rf "$L"
    [ $rc = 0 ] || { printf '%s\n' "$out" | tail -n 1 >&2; exit 1; }
    id=$(docker image inspect -f '{{.Id}}' "$TAG" 2>/dev/null)
    [ "$id" = "$CONFIG" ] || { echo "loaded $TAG has id ${id:-none}, not $CONFIG" >&2; exit 1; }
}

do_clean() {  # H: staged blobs no longer needed
    for h in $H; do rm -f "$S/blobs/$h" "$S/blobs/$h.part"; done
}

# L4T (OS) updates (fleetctl/rollout/l4t.py), the apt way: NVIDIA's apt source moved to
# the target's rXX.Y (DIST), the nvidia-l4t-* packages held at the TARGET release by an
# apt pin (PINV, a version regex), dist-upgrade, a reboot that applies the bootloader
# capsule. Until the install, the source and pin as they were are kept beside them.
apt_paths() {
    SRC=/etc/apt/sources.list.d/nvidia-l4t-apt-source.list
    PIN=/etc/apt/preferences.d/fleetctl-l4t
}

apt_back() {  # the apt source and pin as they were before the stage, lists re-read
    [ -f "$SRC.fleetctl-before" ] && mv -f "$SRC.fleetctl-before" "$SRC"
    if [ -f "$PIN.fleetctl-before" ]; then mv -f "$PIN.fleetctl-before" "$PIN"
    else rm -f "$PIN"; fi
    apt-get update -q >/dev/null 2>&1
    apt-get clean >/dev/null 2>&1
}

apt_error() {  # the last apt error of $D/apt.log, and the free space, on stderr
    e=$(grep -E '^(E|W):' "$D/apt.log" | tail -n 1)
    [ -n "$e" ] || e=$(tail -n 1 "$D/apt.log")
    free=$(df -Pk /var/cache/apt | awk 'NR == 2 { print int($4 / 1024) }')
    echo "$e ($free MB free on /var/cache/apt)" >&2
}

do_os_stage_apt() {  # DIST TARGET PINV: point apt at the target, download its packages
    apt_paths
    [ -f "$SRC" ] || { echo "no NVIDIA apt source ($SRC)" >&2; exit 1; }
    mkdir -p "$D" || exit 1
    if [ ! -f "$SRC.fleetctl-before" ]; then   # not a resumed stage: keep what was there
        if [ -f "$PIN" ]; then cp -p "$PIN" "$PIN.fleetctl-before" || exit 1; fi
        cp -p "$SRC" "$SRC.fleetctl-before" || exit 1
    fi
    sed -E "s/^(deb(\s+\[[^]]*\])?\s+\S+\s+)r[0-9]+\.[0-9]+(\s)/\1$DIST\3/" \
        "$SRC.fleetctl-before" > "$SRC.tmp" && mv -f "$SRC.tmp" "$SRC" || {
        apt_back; echo "cannot rewrite $SRC (disk full?)" >&2; exit 1; }
    printf 'Explanation: fleetctl os upgrade holds L4T at %s\nPackage: nvidia-l4t-*\nPin: version %s\nPin-Priority: 1001\n' \
        "$TARGET" "$PINV" > "$PIN" || { apt_back; echo "cannot write $PIN (disk full?)" >&2; exit 1; }
    if ! apt-get update -q > "$D/apt.log" 2>&1; then apt_error; apt_back; exit 1; fi
    have=$(apt-cache policy nvidia-l4t-core | sed -n 's/^ *Candidate: //p')
    case "$have" in "$TARGET"-*) ;; *)
        apt_back
        echo "NVIDIA's apt source $DIST offers nvidia-l4t-core ${have:-(none)}, not $TARGET" >&2
        exit 1 ;;
    esac
    if ! DEBIAN_FRONTEND=noninteractive apt-get -y -q -d dist-upgrade >> "$D/apt.log" 2>&1; then
        apt_error; apt_back; exit 1
    fi
    echo "staged $have"
}

do_os_unstage_apt() {  # the apt source and pin back as they were (nothing installed)
    apt_paths
    [ -f "$SRC.fleetctl-before" ] || exit 0
    apt_back
}

do_os_install_apt() {  # TARGET: install what was staged, check dpkg's result
    apt_paths
    if ! DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Options::=--force-confdef \
            -o Dpkg::Options::=--force-confold dist-upgrade >> "$D/apt.log" 2>&1; then
        apt_error; exit 1
    fi
    broken=$(dpkg --audit 2>&1 | head -n 1)
    [ -z "$broken" ] || { echo "dpkg --audit: $broken" >&2; exit 1; }
    v=$(dpkg-query -W -f='${Version}' nvidia-l4t-core)
    case "$v" in "$TARGET"-*) ;; *)
        echo "nvidia-l4t-core is ${v:-missing} after the upgrade, not $TARGET" >&2; exit 1 ;;
    esac
    rm -f "$SRC.fleetctl-before" "$PIN.fleetctl-before"
    apt-get clean >/dev/null 2>&1
    echo "installed $v"
}

do_os_reboot() {  # a mark in /run (gone after a boot), then reboot once this answers
    : > /run/fleetctl-reboot-pending || exit 1
    nohup sh -c 'sleep 1; reboot' >/dev/null 2>&1 </dev/null &
    echo rebooting
}

do_os_booted() {
    if [ -e /run/fleetctl-reboot-pending ]; then echo pending; else echo booted; fi
}

# The image-based way: the payload arrives as a staged blob ($S/blobs/$H, its sha256
# checked), NVIDIA's nv_ota_start.sh writes it into the other rootfs slot and makes that
# slot the next boot's; the stage disarms it again (the current slot boots next) until
# the activation, so an unplanned reboot does not switch slots.
do_os_stage_image() {  # S H OTA_START: print the slot written
    [ -f "$S/blobs/$H" ] || { echo "the payload is not on the host" >&2; exit 1; }
    command -v "$OTA_START" >/dev/null 2>&1 || {
        echo "$OTA_START not found: unpack NVIDIA's ota_tools on the host and name its" \
             "nv_ota_start.sh in fleetctl_nv_ota_start" >&2; exit 1; }
    file="$D/ota/ota_payload_package.tar.gz"
    mkdir -p "$D/ota" && mv -f "$S/blobs/$H" "$file" || exit 1
    cur=$(nvbootctrl get-current-slot) || { echo "nvbootctrl did not answer" >&2; exit 1; }
    if ! "$OTA_START" "$file" > "$D/ota.log" 2>&1; then
        tail -n 1 "$D/ota.log" >&2; rm -f "$file"; exit 1
    fi
    rm -f "$file"
    nvbootctrl set-active-boot-slot "$cur" || exit 1
    echo "written $((1 - cur))"
}

do_os_next_slot() {  # SLOT (0 or 1): the slot the next boot uses
    nvbootctrl set-active-boot-slot "$SLOT"
}
