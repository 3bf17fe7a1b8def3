// SPDX-License-Identifier: GPL-2.0
/* crlf: a tiny module of a hermod dkms.conf fixture. */
#include <linux/module.h>
static int __init crlf_init(void) { return 0; }
static void __exit crlf_exit(void) { }
module_init(crlf_init);
module_exit(crlf_exit);
MODULE_LICENSE("GPL");
