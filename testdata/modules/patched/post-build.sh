#!/bin/sh
# POST_BUILD: runs in the build directory after the modules were collected,
# which DKMS leaves in $dkms_tree/<module>/<version>/<kernel>/<arch>/module/.
[ -f patched.ko ] && echo "hermod-fixture: POST_BUILD ran in $(pwd)"
for ko in /var/lib/dkms/patched/1.0/*/x86_64/module/patched.ko; do
	[ -f "$ko" ] && echo "hermod-fixture: POST_BUILD found $ko"
done
