#!/bin/busybox sh
# The worker VM's initramfs init (rootfs/build-vm-image.sh puts it in as /init). It loads the drivers of
# the VM's disks, finds them by their serial numbers, mounts the root (serial ephemerd-root: the boot's
# throwaway overlay of the base disk) and, read-only, the host disk (serial ephemerd-host: the daemon's
# binary, the runner tree and the image archives), then hands pid 1 over to that binary's `vm-init`,
# which does the rest. Any failure powers the VM off (QEMU runs with -no-reboot), saying why on the console.
bb=/bin/busybox
fail() {
    echo "ephemerd initramfs: $*" >/dev/console
    $bb poweroff -f
}
$bb mount -t proc proc /proc || fail "cannot mount /proc"
$bb mount -t sysfs sysfs /sys || fail "cannot mount /sys"
$bb mount -t devtmpfs devtmpfs /dev || fail "cannot mount /dev"
while read -r m; do
    $bb insmod "$m" || fail "cannot load $m"
done </modules
# The block device whose virtio serial is $1 (waits up to 5 s for it).
disk() {
    n=0
    while [ "$n" -lt 500 ]; do
        for s in /sys/block/vd*/serial; do
            [ -f "$s" ] && [ "$($bb cat "$s")" = "$1" ] && { d=${s%/serial}; echo "/dev/${d##*/}"; return 0; }
        done
        n=$((n + 1))
        $bb usleep 10000
    done
    return 1
}
root=$(disk ephemerd-root) || fail "no root disk (serial ephemerd-root)"
host=$(disk ephemerd-host) || fail "no host disk (serial ephemerd-host)"
$bb mount -t ext4 -o noatime "$root" /newroot || fail "cannot mount the root disk $root"
$bb mount -t ext4 -o ro,noatime "$host" /newroot/usr/lib/ephemerd/host || fail "cannot mount the host disk $host"
exe=/usr/lib/ephemerd/host/ephemerd
[ -x "/newroot$exe" ] || fail "the host disk has no ephemerd binary"
$bb mount --move /dev /newroot/dev || fail "cannot move /dev"
$bb umount /proc /sys
exec $bb switch_root /newroot "$exe" vm-init
