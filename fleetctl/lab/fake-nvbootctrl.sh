# Lab stand-in for NVIDIA's nvbootctrl (the lab writes VERSION and UNIFIED above this
# line; the firmware's version in the ESRT wins): the boot slots of a host whose rootfs
# A/B is enabled, in nvbootctrl's output format and exit codes. State lives in /etc/fleetlab/slots (current, active, capsule,
# each slot's status), so a lab fault or a simulated update can change it.
STATE=/etc/fleetlab/slots
fw=$(cat /sys/firmware/efi/esrt/entries/entry0/fw_version 2>/dev/null)
case "$fw" in ''|*[!0-9]*) ;; *) VERSION="$((fw >> 16)).$(((fw >> 8) & 255)).$((fw & 255))" ;; esac
current=A active=A capsule=0 slot0=normal slot1=normal
[ -r "$STATE" ] && . "$STATE"
[ "$1" = "-t" ] && shift 2           # -t rootfs|bootloader: the same slots here
case "$1" in
    dump-slots-info)
        printf 'Current version: %s\nCapsule update status: %s\n' "$VERSION" "$capsule"
        printf 'Current bootloader slot: %s\nActive bootloader slot: %s\n' "$current" "$active"
        printf 'num_slots: 2\nslot: 0,             status: %s\n' "$slot0"
        printf 'slot: 1,             status: %s\n' "$slot1" ;;
    get-current-slot) [ "$current" = A ] && echo 0 || echo 1 ;;
    is-unified-enabled) exit "$UNIFIED" ;;
    *) echo "nvbootctrl: unknown command '$1'" >&2; exit 1 ;;
esac
