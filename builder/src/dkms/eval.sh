#!/bin/bash
# Evaluate a dkms.conf the way DKMS does and print its directives for hermod.
#
# dkms.conf is not a config file but a bash script that DKMS sources with a few
# variables set (kernelver, arch, kernel_source_dir, ...). Real packages run find,
# grep the kernel .config, call nproc. So it is sourced here, inside the sandbox,
# with the same variables, and the result is printed as NUL-separated records:
#   N NAME VERSION         PACKAGE_NAME/PACKAGE_VERSION of the first pass
#   A NAME INDEX VALUE     one element of a directive (X=v is X[0]=v)
#   R NAME INDEX           the regex NAME[INDEX] matched (MAKE_MATCH, PATCH_MATCH,
#                          BUILD_EXCLUSIVE_KERNEL, BUILD_EXCLUSIVE_ARCH)
#   C INDEX WORD           a word of BUILD_EXCLUSIVE_CONFIG[INDEX] the kernel config fails
# Exit codes: 0 ok, 65 syntax error.
#
# Usage: eval.sh MODE CONF KERNELVER ARCH KERNEL_SOURCE_DIR PARALLEL_JOBS OVERRIDES_DIR OUTFILE DKMS
#   MODE names: only the first pass (N record); MODE all: everything.
#   DKMS 3.0 (bookworm's 3.0.10) or 3.2 (trixie's 3.2.2): whose reading applies
#   (dkms::Semantics; the differences are listed in dkms/mod.rs).
# Scratch files go to $TMPDIR/hermod-dkms (/tmp in the sandbox).

mode=$1 conf=$2 kernelver=$3 arch=$4 kernel_source_dir=$5 parallel_jobs=$6 overrides=$7 out=$8 dkms=$9
case $dkms in
    3.0 | 3.2) ;;
    *) echo "hermod: eval.sh: unknown DKMS semantics '$dkms'" >&2; exit 2 ;;
esac
scratch=${TMPDIR:-/tmp}/hermod-dkms
dkms_tree=/var/lib/dkms
source_tree=/usr/src
install_tree=/lib/modules
tmp_location=/tmp
# DKMS 3.2: the kernel config is the headers' auto.conf, else their .config
# (3.0.10 reads .config only, for BUILD_EXCLUSIVE_CONFIG below).
if [[ $dkms == 3.2 && -e $kernel_source_dir/include/config/auto.conf ]]; then
    kernel_config=$kernel_source_dir/include/config/auto.conf
else
    kernel_config=$kernel_source_dir/.config
fi

# The directives DKMS takes from a sourced file (its dkms_conf_variables, less
# its internal lower-case ones); nothing else survives it. 3.0.10 (with
# Debian's BUILD_EXCLUSIVE_CONFIG backport) has no BUILD_EXCLUSIVE_KERNEL_MIN/_MAX.
directives="PACKAGE_NAME PACKAGE_VERSION POST_ADD POST_BUILD POST_INSTALL POST_REMOVE
    PRE_BUILD PRE_INSTALL BUILD_DEPENDS BUILD_EXCLUSIVE_ARCH BUILD_EXCLUSIVE_CONFIG
    BUILD_EXCLUSIVE_KERNEL OBSOLETE_BY MAKE MAKE_MATCH PATCH PATCH_MATCH BUILT_MODULE_NAME
    BUILT_MODULE_LOCATION DEST_MODULE_NAME DEST_MODULE_LOCATION STRIP AUTOINSTALL
    NO_WEAK_MODULES CLEAN REMAKE_INITRD MODULES_CONF MODULES_CONF_OBSOLETES
    MODULES_CONF_ALIAS_TYPE MODULES_CONF_OBSOLETE_ONLY"
if [[ $dkms == 3.2 ]]; then
    directives+=" BUILD_EXCLUSIVE_KERNEL_MIN BUILD_EXCLUSIVE_KERNEL_MAX BUILD_DEPENDS_REBUILD"
fi

# CRLF line endings are accepted, as DKMS accepts them; `bash -n` first: DKMS
# 3.0.10 silently drops everything after a syntax error and exits 0, hermod
# refuses such a file. The copy keeps the file's name for bash's messages.
normalize() { # FILE NAME -> prints the checked copy's path
    mkdir -p "$scratch" || exit 1
    local copy=$scratch/$2
    sed 's/\r$//' "$1" >"$copy" || exit 1
    if ! bash -n "$copy"; then
        echo "hermod: $2 has a bash syntax error (see above)" >&2
        exit 65
    fi
    printf '%s' "$copy"
}

# DKMS's safe_source: each file is sourced in a subshell that sees the
# directives so far, with stdout discarded; the file's status is ignored (a
# file ending in `[ -f x ] && FOO=1` is fine). The subshell hands every set
# element back as the text `NAME[i]="VALUE"`, the value expanded *unquoted*
# by `eval echo` (so word-split on blanks and newlines, globbed, the words
# joined by one space), and DKMS sources that text on top of what it had: the
# value is parsed by bash a second time (quotes inside it pair up anew, `$`
# and backquotes expand again). zfs-dkms's 20-line PRE_BUILD with `""` in it
# becomes one line `configure … --with-qat= --host= ` this way. 3.2 also cuts
# one trailing CR from each value. Globs match in DKMS's working directory;
# hermod's is /. The directives so far are kept as `declare -p` lines in $state.
state=$scratch/state
source_one() {
    (
        . "$state"
        . "$1" >/dev/null
        cd / || exit 1
        CR=$'\r'
        for _export_env in $directives; do
            for _i in $(eval echo \${!$_export_env[@]}); do
                if [[ $dkms == 3.2 ]]; then
                    eval echo '$_export_env[$_i]=\"${'$_export_env'[$_i]%$CR}\"'
                else
                    eval echo '$_export_env[$_i]=\"${'$_export_env'[$_i]}\"'
                fi
            done
        done
    ) >"$state.echo" || exit 1
    (
        . "$state"
        . "$state.echo"
        for v in $directives; do
            declare -p "$v" 2>/dev/null
        done
    ) >"$state.next"
    mv "$state.next" "$state"
}

conf_copy=$(normalize "$conf" dkms.conf) || exit $?

# First pass: module and module_version are what DKMS knows before sourcing;
# for a source directory it learns them this way (`dkms add DIR`).
module='' module_version=''
: >"$state"
source_one "$conf_copy"
module=$(. "$state"; printf '%s' "$PACKAGE_NAME")
module_version=$(. "$state"; printf '%s' "$PACKAGE_VERSION")
printf 'N\0%s\0%s\0' "$module" "$module_version" >"$out"
[[ $mode == names ]] && exit 0

# Second pass: dkms.conf, then the override files that exist, in DKMS's order
# (hermod copied exactly those that apply into $overrides).
: >"$state"
source_one "$conf_copy"
names=("$module.conf" "$module-$module_version.conf" "$module-$module_version-$kernelver.conf"
    "$module-$module_version-$kernelver-$arch.conf")
# 3.0.10 knows no version-less `<module>--<kernelver>[-<arch>].conf`.
[[ $dkms == 3.2 ]] && names+=("$module--$kernelver.conf" "$module--$kernelver-$arch.conf")
for name in "${names[@]}"; do
    if [[ -f $overrides/$name ]]; then
        copy=$(normalize "$overrides/$name" "$name") || exit $?
        source_one "$copy"
    fi
done

. "$state"
{
    printf 'N\0%s\0%s\0' "$module" "$module_version"
    for v in $directives; do
        declare -p "$v" >/dev/null 2>&1 || continue
        declare -n ref=$v
        for i in "${!ref[@]}"; do
            printf 'A\0%s\0%s\0%s\0' "$v" "$i" "${ref[$i]}"
        done
        unset -n ref
    done
    # Regexes are matched here, with bash's own =~, so their semantics are
    # exactly DKMS's; an empty one is not a condition (hermod checks that).
    for i in "${!MAKE_MATCH[@]}"; do
        [[ $kernelver =~ ${MAKE_MATCH[$i]} ]] && printf 'R\0MAKE_MATCH\0%s\0' "$i"
    done
    for i in "${!PATCH_MATCH[@]}"; do
        [[ $kernelver =~ ${PATCH_MATCH[$i]} ]] && printf 'R\0PATCH_MATCH\0%s\0' "$i"
    done
    # BUILD_EXCLUSIVE_*[i]: element 0 is the whole package's, the others
    # (3.3's per-module form) module i's.
    for i in "${!BUILD_EXCLUSIVE_KERNEL[@]}"; do
        [[ $kernelver =~ ${BUILD_EXCLUSIVE_KERNEL[$i]} ]] && printf 'R\0BUILD_EXCLUSIVE_KERNEL\0%s\0' "$i"
    done
    for i in "${!BUILD_EXCLUSIVE_ARCH[@]}"; do
        [[ $arch =~ ${BUILD_EXCLUSIVE_ARCH[$i]} ]] && printf 'R\0BUILD_EXCLUSIVE_ARCH\0%s\0' "$i"
    done
    # BUILD_EXCLUSIVE_CONFIG: CONFIG_X must be y or m, !CONFIG_Y must not be
    # (3.0.10, Debian's backport: grep -E on .config; 3.2: grep on $kernel_config).
    grep=(grep -q)
    [[ $dkms == 3.0 ]] && grep=(grep -q -E)
    for i in "${!BUILD_EXCLUSIVE_CONFIG[@]}"; do
        [[ ${BUILD_EXCLUSIVE_CONFIG[$i]} && -e $kernel_config ]] || continue
        for word in ${BUILD_EXCLUSIVE_CONFIG[$i]}; do
            case $word in
                !*) "${grep[@]}" "^${word#!}=[ym]" "$kernel_config" && printf 'C\0%s\0%s\0' "$i" "$word" ;;
                *) "${grep[@]}" "^${word}=[ym]" "$kernel_config" || printf 'C\0%s\0%s\0' "$i" "$word" ;;
            esac
        done
    done
    true
} >"$out"
