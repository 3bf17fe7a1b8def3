// SPDX-License-Identifier: GPL-2.0
/* exclusive: a tiny module of a hermod dkms.conf fixture. */
#include <linux/module.h>
static int __init exclusive_init(void) { return 0; }
static void __exit exclusive_exit(void) { }
module_init(exclusive_init);
module_exit(exclusive_exit);
MODULE_LICENSE("GPL");
