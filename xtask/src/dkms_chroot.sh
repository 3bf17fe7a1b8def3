# `cargo xtask dkms-corpus`, DKMS side: one -dkms package built by DKMS itself
# in a throwaway copy of the base root. Run by dkms_chroot.rs as
#   unshare -m --propagation private bash -s BASE WORK PACKAGE VERSION KREL ARCHIVES LOCK
# so every mount below lives in this private mount namespace only and
# vanishes with it: nothing is mounted on the host, nothing to tear down
# by hand even when this script dies half-way.
#
# Prints `key value` lines on stdout for dkms_chroot.rs: `tree`, `status`,
# `seconds`, `module`, `log`; a failed step says `failed STEP`.
set -u
base=$1 work=$2 package=$3 version=$4 krel=$5 archives=$6 lock=$7

# An overlay on the base root: each package starts from the same pristine
# root (no cross-talk: one package's Depends or leftovers never help or hurt
# another), and the copy costs nothing. The upper dir is removed afterwards.
mkdir -p "$work/upper" "$work/overlay-work" "$work/root" "$work/logs" || exit 1
r=$work/root
mount -t overlay overlay -o "lowerdir=$base,upperdir=$work/upper,workdir=$work/overlay-work" "$r" || exit 1
mount -t proc proc "$r/proc" || exit 1
# A minimal /dev of bind-mounted host nodes, not the host's /dev itself,
# so nothing the chroot does can create or remove host device files.
mount -t tmpfs -o mode=0755,size=1M dev "$r/dev" || exit 1
for node in null zero full random urandom tty; do
    touch "$r/dev/$node" && mount --bind "/dev/$node" "$r/dev/$node" || exit 1
done
# dkms uses bash's <(cmd), which needs /dev/fd.
ln -s /proc/self/fd "$r/dev/fd" && ln -s /proc/self/fd/0 "$r/dev/stdin" || exit 1
ln -s /proc/self/fd/1 "$r/dev/stdout" && ln -s /proc/self/fd/2 "$r/dev/stderr" || exit 1
mkdir -p "$r/dev/pts" "$r/dev/shm" && mount -t tmpfs -o size=64M shm "$r/dev/shm" || exit 1
mount -t tmpfs -o size=2G tmp "$r/tmp" || exit 1
# apt inside needs name resolution (read-only view of the host's) and keeps
# its downloads in a cache shared by all runs (apt verifies them itself).
touch "$r/etc/resolv.conf" && mount --bind -o ro /etc/resolv.conf "$r/etc/resolv.conf" || exit 1
mount --bind "$archives" "$r/var/cache/apt/archives" || exit 1

in_root() {
    chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
}

# The package and its own Depends, as `apt-get install` brings them on a
# real host (Recommends left out, as the base root has none either). apt
# runs one at a time: the download cache is shared, and apt locks it.
if ! flock "$lock" chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$package=$version" \
    >"$work/logs/apt.log" 2>&1; then
    echo "failed apt-get install"
    echo "log $work/logs/apt.log"
    exit 0
fi

# The postinst did not build anything: the base root has
# /etc/dkms/no-autoinstall (see dkms_chroot.rs), so the DKMS trees are
# added and built here, for KREL only, and timed.
trees=$(in_root dpkg -L "$package" | grep -E '^/usr/src/[^/]+/dkms\.conf$' | sed 's,/dkms\.conf$,,')
if [ -z "$trees" ]; then
    echo "failed no /usr/src/*/dkms.conf in the package"
    exit 0
fi
n=0
for tree in $trees; do
    n=$((n + 1))
    echo "tree $tree"
    in_root dkms add "$tree" >"$work/logs/add-$n.log" 2>&1
    # BUILD_DEPENDS: DKMS builds a module only when the modules it names are
    # *installed* for the kernel (exit 13 otherwise). On a DKMS host they are
    # (the dependency's postinst and autoinstall build them first); here the
    # postinsts stopped at no-autoinstall, so each one whose tree the
    # package's Depends brought is added and installed for KREL first,
    # untimed, like apt-get install above.
    deps=$(in_root bash -c 'kernelver=$1 arch=$2 kernel_source_dir=/lib/modules/$1/build; . "$3/dkms.conf" >/dev/null 2>&1; echo "${BUILD_DEPENDS[@]}"' \
        deps "$krel" "$(uname -m)" "$tree")
    for dep in $deps; do
        for dep_conf in "$r"/usr/src/"$dep"-*/dkms.conf; do
            [ -f "$dep_conf" ] || continue
            dep_tree=${dep_conf#"$r"}
            dep_tree=${dep_tree%/dkms.conf}
            in_root dkms add "$dep_tree" >"$work/logs/depends-$dep.log" 2>&1
            in_root dkms install -m "$dep" -v "${dep_tree#/usr/src/"$dep"-}" -k "$krel" >>"$work/logs/depends-$dep.log" 2>&1
            echo "depends $dep $?"
            echo "log $work/logs/depends-$dep.log"
        done
    done
    # Whatever registered this tree (our add, or a postinst's own), build it.
    for src in "$r"/var/lib/dkms/*/*/source; do
        [ "$(readlink "$src")" = "$tree" ] || continue
        mv_dir=${src%/source}
        ver=${mv_dir##*/}
        name=${mv_dir%/*}
        name=${name##*/}
        started=$(date +%s.%N)
        in_root dkms build -m "$name" -v "$ver" -k "$krel" >"$work/logs/dkms-$name.log" 2>&1
        status=$?
        ended=$(date +%s.%N)
        echo "build $name $ver"
        echo "status $status"
        echo "seconds $(awk "BEGIN { print $ended - $started }")"
        echo "log $work/logs/dkms-$name.log"
        make_log=$r/var/lib/dkms/$name/$ver/build/make.log
        [ -f "$make_log" ] && cp "$make_log" "$work/logs/make-$name.log" && echo "log $work/logs/make-$name.log"
        for ko in $(find "$r/var/lib/dkms/$name/$ver/$krel" -name '*.ko*' 2>/dev/null | sort); do
            echo "module $(basename "$ko")"
        done
    done
done
