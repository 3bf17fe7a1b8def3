#!/bin/bash
# Evaluate a dkms.conf the way DKMS does and print its directives for hermod.
#
# dkms.conf is not a config file but a bash script that DKMS sources with a few
# variables set (kernelver, arch, kernel_source_dir, ...). Real packages run find,
# grep the kernel .config, call nproc. So it is sourced here, inside the sandbox,
# with the same variables, and the result is printed as NUL-separated records:
#   S NAME VALUE           a scalar directive
#   A NAME INDEX VALUE     one element of an array directive
# Exit codes: 0 ok, 65 syntax error.
#
# Usage: eval.sh CONF KERNELVER ARCH KERNEL_SOURCE_DIR PARALLEL_JOBS OUTFILE

conf=$1 kernelver=$2 arch=$3 kernel_source_dir=$4 parallel_jobs=$5 out=$6
dkms_tree=/var/lib/dkms
source_tree=/usr/src
install_tree=/lib/modules
kernel_config=/boot/config-$kernelver

# CRLF line endings are accepted, as DKMS accepts them.
# The copy is named dkms.conf so that bash's messages name the right file.
normalized=/tmp/dkms.conf
sed 's/\r$//' "$conf" >"$normalized"

# `bash -n` first: DKMS 3.0.10 silently drops everything after a syntax error and
# exits 0; hermod refuses such a file.
if ! bash -n "$normalized"; then
    echo "hermod: dkms.conf has a bash syntax error (see above)" >&2
    exit 65
fi

# dkms.conf is sourced with stdout discarded, as DKMS's safe_source does. Its
# status is ignored, as DKMS ignores it: a file ending in `[ -f x ] && FOO=1` is fine.
. "$normalized" >/dev/null || true

{
    for v in PACKAGE_NAME PACKAGE_VERSION CLEAN AUTOINSTALL PRE_BUILD POST_BUILD \
             BUILD_EXCLUSIVE_KERNEL BUILD_EXCLUSIVE_KERNEL_MIN BUILD_EXCLUSIVE_KERNEL_MAX \
             BUILD_EXCLUSIVE_ARCH BUILD_EXCLUSIVE_CONFIG REMAKE_INITRD NO_WEAK_MODULES; do
        if declare -p "$v" >/dev/null 2>&1; then
            printf 'S\0%s\0%s\0' "$v" "${!v}"
        fi
    done
    for v in BUILT_MODULE_NAME BUILT_MODULE_LOCATION DEST_MODULE_NAME DEST_MODULE_LOCATION \
             STRIP MAKE MAKE_MATCH PATCH PATCH_MATCH BUILD_DEPENDS; do
        declare -p "$v" >/dev/null 2>&1 || continue
        declare -n ref=$v
        for i in "${!ref[@]}"; do
            printf 'A\0%s\0%s\0%s\0' "$v" "$i" "${ref[$i]}"
        done
        unset -n ref
    done
    # MAKE_MATCH is a bash regex matched against the kernel release: evaluate it
    # here with bash's own =~ so the semantics are exactly DKMS's.
    if declare -p MAKE_MATCH >/dev/null 2>&1; then
        for i in "${!MAKE_MATCH[@]}"; do
            if [[ $kernelver =~ ${MAKE_MATCH[$i]} ]]; then
                printf 'M\0%s\0' "$i"
            fi
        done
    fi
} >"$out"
