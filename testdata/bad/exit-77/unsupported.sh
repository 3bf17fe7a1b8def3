#!/bin/sh
# What a configure script says for a kernel it does not support.
echo "unsupported.sh${1:+ ($1)}: this kernel is not supported, skipping" >&2
exit 77
