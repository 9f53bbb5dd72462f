# Lab stand-in for NVIDIA's nv_ota_start.sh (image-based OTA, from ota_tools): checks
# that the payload is made for this board, writes its root filesystem into the other
# rootfs slot, stages its bootloader capsule in the ESP and makes the other slot the
# next boot's. It logs to /var/log/ota_log (NVIDIA's logs to /ota_log; a lab host's / is
# the machine's). Usage: nv_ota_start.sh PAYLOAD
set -u
payload=${1:?usage: nv_ota_start.sh PAYLOAD}
mkdir -p /var/log/ota_log || exit 1
log=/var/log/ota_log/ota_$(date +%Y%m%d-%H%M%S).log
fail() { echo "nv_ota_start.sh: $*" | tee -a "$log" >&2; exit 1; }
target=/run/fleetlab-inactive-slot
[ -d "$target" ] || fail "no inactive rootfs slot: rootfs A/B is not enabled"
spec=$(awk '$1 == "TNSPEC" { print $2 }' /etc/nv_boot_control.conf)
specs=$(tar -xzOf "$payload" ota_board_specs.conf 2>/dev/null) ||
    fail "$payload is not an OTA payload package"
printf '%s\n' "$specs" | grep -qxF "$spec" ||
    fail "board $spec is not in the payload's ota_board_specs.conf"
current=$(nvbootctrl get-current-slot) || fail "nvbootctrl did not answer"
other=$((1 - current))
echo "writing slot $other from $payload" >> "$log"
find "$target" -mindepth 1 -maxdepth 1 -exec rm -rf {} + || fail "cannot clear slot $other"
tar --xattrs --xattrs-include='trusted.*' -xzf "$payload" -C "$target" \
    --strip-components=1 rootfs >> "$log" 2>&1 || fail "cannot write slot $other (disk full?)"
mkdir -p /boot/efi/EFI/UpdateCapsule &&
    tar -xzOf "$payload" bootloader/TEGRA_BL.Cap > /boot/efi/EFI/UpdateCapsule/TEGRA_BL.Cap ||
    fail "cannot stage the bootloader capsule"
nvbootctrl set-active-boot-slot "$other" || fail "cannot make slot $other active"
echo "slot $other written; reboot to boot it" | tee -a "$log"
