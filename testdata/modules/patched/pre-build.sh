#!/bin/sh
# PRE_BUILD: runs in the build directory after the patches; writes the header the module needs.
[ -f kernel6.txt ] || { echo "patches/kernel6.patch was not applied" >&2; exit 1; }
echo "#define PATCHED_VALUE $1" > generated.h
