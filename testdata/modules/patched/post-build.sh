#!/bin/sh
# POST_BUILD: runs in the build directory after the modules were collected.
[ -f patched.ko ] && echo "hermod-fixture: POST_BUILD ran in $(pwd)"
