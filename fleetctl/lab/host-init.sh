#!/bin/sh
# First process of a lab host's mount + UTS namespace (run under `unshare`).
# Builds the host's private view of the machine from its booted root filesystem slot,
# then becomes the anchor that keeps the namespace alive.
# Arguments: HOST_DIR NAME LAB_DIR USRBIN_OVERLAY JETSON SLOT (a or b)
set -eu
HOST_DIR=$1 NAME=$2 LAB_DIR=$3 USRBIN_OVERLAY=$4 JETSON=$5 SLOT=$6

hostname "$NAME"
mount -t tmpfs -o size=64m,mode=0755 "fleetlab-$NAME-run" /run
mkdir -p /run/sshd /run/lock /run/user
chmod 0755 /run/sshd

# The lab directory may sit under /var/lib, which gets an overlay below: reach
# the host's disk and files through a private bind that the overlay cannot hide.
DISK=/run/fleetlab-disk FILES=/run/fleetlab-files
mkdir -p "$DISK" "$FILES"
mount --bind "$HOST_DIR/disk" "$DISK"
mount --bind "$HOST_DIR" "$FILES"
ROOTFS="$DISK/slot-$SLOT"

overlay() {  # overlay TARGET LAYER: the machine's TARGET below, the slot's files above
    mount -t overlay "ovl-$NAME-$2" \
        -o "lowerdir=$1,upperdir=$ROOTFS/$2/upper,workdir=$ROOTFS/$2/work" "$1"
}
overlay /etc etc
overlay /opt opt
overlay /usr/local usr_local
overlay /var/lib var_lib
overlay /var/cache var_cache
overlay /var/log var_log
if [ "$USRBIN_OVERLAY" = yes ]; then overlay /usr/bin usr_bin; fi

for dir in root home tmp; do mount --bind "$DISK/$dir" "/$dir"; done
mount --bind "$DISK/ssh" /etc/ssh
mkdir -p /var/lib/docker
mount --bind "$ROOTFS/docker" /var/lib/docker
mount --bind "$FILES/meminfo" /proc/meminfo
if [ "$JETSON" = yes ]; then
    mount --bind "$FILES/fw" /sys/firmware
    # the ESP (UEFI capsules) lies outside the root filesystem
    mount -t tmpfs -o size=1m,mode=0755 "fleetlab-$NAME-boot" /boot
    mkdir -p /boot/efi
    if [ -d "$FILES/esp" ]; then mount --bind "$FILES/esp" /boot/efi; fi
fi
# the other rootfs slot, which nv_ota_start.sh writes (the lab's stand-in for its partition)
OTHER=b; [ "$SLOT" = a ] || OTHER=a
if [ -d "$DISK/slot-$OTHER" ]; then
    mkdir -p /run/fleetlab-inactive-slot
    mount --bind "$DISK/slot-$OTHER" /run/fleetlab-inactive-slot
fi
umount "$DISK" "$FILES"
rmdir "$DISK" "$FILES"

# Logins that are not root, as JetPack's 'nvidia' (ansible_become): 'nvidia' may sudo
# without a password, 'ops' only with its password (lab-sudo-password).
if ! grep -q '^nvidia:' /etc/passwd; then
    echo 'nvidia:x:4242:4242:fleetlab nvidia:/home/nvidia:/bin/sh' >> /etc/passwd
    echo 'ops:x:4243:4243:fleetlab ops:/home/ops:/bin/sh' >> /etc/passwd
    printf 'nvidia:x:4242:\nops:x:4243:\n' >> /etc/group
    echo 'nvidia:*:19000:0:99999:7:::' >> /etc/shadow
    echo "ops:$(openssl passwd -6 -salt fleetlab lab-sudo-password):19000:0:99999:7:::" \
        >> /etc/shadow
    echo "127.0.1.1 $NAME" >> /etc/hosts      # sudo resolves the host's own name
fi
if [ -d /etc/sudoers.d ]; then
    printf 'nvidia ALL=(ALL) NOPASSWD:ALL\nops ALL=(ALL) ALL\n' > /etc/sudoers.d/fleetlab
    chmod 0440 /etc/sudoers.d/fleetlab
fi

# Hide the lab's own state (keys, other hosts) from the host.
mount -t tmpfs -o size=4k,mode=0700 "fleetlab-$NAME-hide" "$LAB_DIR"

touch /run/fleetlab-ready
exec sleep infinity
