#!/bin/sh
# fleetctl's OS probe (for `fleetctl os plan`): run by `sh -s` over one SSH channel;
# prints raw sections introduced by "@@fleetctl:<name>" lines, parsed by
# fleetctl/facts/osfacts.py: the NVIDIA apt source, the boot slots, the firmware,
# the root filesystem and its free space, the board spec, the L4T packages and whether
# an update by fleetctl is under way.
exec 2>/dev/null
m() { printf '\n@@fleetctl:%s\n' "$1"; }
m begin; echo 1
m apt_source; cat /etc/apt/sources.list.d/nvidia-l4t-apt-source.list
if command -v nvbootctrl >/dev/null; then
    m slots; nvbootctrl dump-slots-info
    m unified; nvbootctrl is-unified-enabled >/dev/null 2>&1; echo $?
fi
m fw_version; cat /sys/firmware/efi/esrt/entries/entry0/fw_version
m last_attempt_status; cat /sys/firmware/efi/esrt/entries/entry0/last_attempt_status
m root_mount; awk '$2 == "/" { print $3, $4 }' /proc/mounts | tail -n 1
m root_df; df -Pk /var/cache/apt
m boot_control; cat /etc/nv_boot_control.conf
m l4t_core; dpkg-query -W -f='${Version}' nvidia-l4t-core
m dpkg_audit; dpkg --audit | head -n 12
m updating
[ -e /etc/apt/sources.list.d/nvidia-l4t-apt-source.list.fleetctl-before ] && echo apt-staged
[ -e /run/fleetctl-reboot-pending ] && echo reboot-pending
m end; echo 1
