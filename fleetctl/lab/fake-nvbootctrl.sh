# Lab stand-in for NVIDIA's nvbootctrl (the lab writes VERSION and UNIFIED above this
# line; the firmware's version in the ESRT wins): the boot slots of a host whose rootfs
# A/B is enabled, in nvbootctrl's output format and exit codes. The bootloader's state
# (fleetctl/lab/boot.py) lives in the host's firmware folder; the lab's boot reads it.
STATE=/sys/firmware/fleetlab-boot
fw=$(cat /sys/firmware/efi/esrt/entries/entry0/fw_version 2>/dev/null)
case "$fw" in ''|*[!0-9]*) ;; *) VERSION="$((fw >> 16)).$(((fw >> 8) & 255)).$((fw & 255))" ;; esac
current=A active=A slot0=normal slot1=normal fwA= fwB= last_attempt_status=0
[ -r "$STATE" ] && . "$STATE"
[ "${1:-}" = "-t" ] && shift 2           # -t rootfs|bootloader: the same slots here
case "${1:-}" in
    dump-slots-info)
        capsule=0; [ "$last_attempt_status" = 0 ] || capsule=3
        printf 'Current version: %s\nCapsule update status: %s\n' "$VERSION" "$capsule"
        printf 'Current bootloader slot: %s\nActive bootloader slot: %s\n' "$current" "$active"
        printf 'num_slots: 2\nslot: 0,             status: %s\n' "$slot0"
        printf 'slot: 1,             status: %s\n' "$slot1" ;;
    get-current-slot) [ "$current" = A ] && echo 0 || echo 1 ;;
    get-number-slots) echo 2 ;;
    is-unified-enabled) exit "$UNIFIED" ;;
    set-active-boot-slot)
        case "${2:-}" in 0) active=A ;; 1) active=B ;;
            *) echo "nvbootctrl: set-active-boot-slot: slot must be 0 or 1" >&2; exit 1 ;;
        esac
        [ -w "$STATE" ] || { echo "nvbootctrl: cannot write the boot slots" >&2; exit 1; }
        sed -i "s/^active=.*/active=$active/" "$STATE" ;;
    *) echo "nvbootctrl: unknown command '${1:-}'" >&2; exit 1 ;;
esac
